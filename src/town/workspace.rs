//! What an agent's container may write, and how the host takes its work back.
//!
//! The rig repository (config, hooks, refs, objects, worktree registrations) is mounted
//! read-only. Each agent writes only its worktree, its mailbox's outbox, and a private
//! git state under `agents/<rig>/<name>/git/`, mounted over the few places git writes:
//! `admin/` (its worktree's HEAD and index), `refs/` and `logs/` (its branch's directory)
//! and `objects/` (its new objects; the rig's objects are read-only alternates). The
//! host reads that state only through `crate::untrusted`, only when no container of the
//! agent runs, and moves the branch in the rig repository itself, forward only.

use super::Town;
use crate::error::{Error, Result};
use crate::runtime::{Bind, Tmpfs};
use crate::untrusted::{Dir, Refused, is_hex};
use std::path::{Path, PathBuf};

/// Everything copied out of one agent's object directory in one import.
const MAX_IMPORT_BYTES: u64 = 2 << 30;
/// Files in an agent's object directory looked at in one import.
const MAX_IMPORT_FILES: usize = 200_000;
/// An agent's index larger than this is not read (its worktree is then kept whole).
const MAX_INDEX_BYTES: u64 = 256 << 20;
/// Worktrees compared with their branch only up to these (see `small_enough_to_compare`).
const MAX_COMPARE_FILES: usize = 200_000;
const MAX_COMPARE_FILE: u64 = 256 << 20;
const MAX_COMPARE_BYTES: u64 = 2 << 30;
/// The uid:gid agents run as when gt runs as root: never uid 0 inside.
pub const AGENT_USER_WHEN_ROOT: (u32, u32) = (10001, 10001);

/// An agent's host-side places.
pub struct Places {
    /// `agents/<rig>/<name>`: host-only; holds the rest.
    pub root: PathBuf,
    /// Mounted read-only at /gt: assignment.json, inbox/, and the outbox mount point.
    pub box_dir: PathBuf,
    /// Mounted read-write at /gt/outbox: the agent's requests (and its ending record).
    pub outbox: PathBuf,
    /// Host-only: requests that were refused, kept for a human.
    pub rejected: PathBuf,
    /// The private git state: admin/, refs/, logs/, objects/.
    pub git: PathBuf,
}

pub fn places(town: &Town, rig: &str, name: &str) -> Places {
    let root = town.mailbox_dir(rig, name);
    Places {
        box_dir: root.join("box"),
        outbox: root.join("outbox"),
        rejected: root.join("rejected"),
        git: root.join("git"),
        root,
    }
}

/// The ref directory of `branch` relative to the git dir, and its last component:
/// `polecat/furiosa/api-3k9` → (`refs/heads/polecat/furiosa`, `api-3k9`).
fn split_branch(branch: &str) -> (String, String) {
    match branch.rsplit_once('/') {
        Some((dir, leaf)) => (format!("refs/heads/{dir}"), leaf.to_string()),
        None => ("refs/heads".to_string(), branch.to_string()),
    }
}

/// The uid:gid an agent runs as: the invoking user's, or a dedicated unprivileged one
/// when gt runs as root.
pub fn agent_user() -> (u32, u32) {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if uid == 0 {
        AGENT_USER_WHEN_ROOT
    } else {
        (uid, gid)
    }
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(format!("creating {}", p.display()), e))
}

/// Give `path` (and everything under it, symlinks themselves) to the agent's uid. Only
/// when gt runs as root; otherwise the agent already is the invoking user.
pub(crate) fn hand_over(path: &Path) -> Result<()> {
    hand_over_tree(path, true)
}

/// As `hand_over`; with `all` false, a tree whose top already belongs to the agent is
/// taken as handed over (a reused worktree: the host wrote nothing into it since).
fn hand_over_tree(path: &Path, all: bool) -> Result<()> {
    let (uid, gid) = agent_user();
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        return Ok(());
    }
    use std::os::unix::fs::MetadataExt;
    if !all && std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == uid) {
        return Ok(());
    }
    fn walk(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
        if std::fs::symlink_metadata(p)?.is_dir() {
            for e in std::fs::read_dir(p)? {
                walk(&e?.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    walk(path, uid, gid)
        .map_err(|e| Error::io(format!("giving {} to the agent's user", path.display()), e))
}

/// Make (or refresh) an agent's mailbox and private git state before its container is
/// created. `fresh`: the worktree was just made, so any private state of an earlier
/// bead is dropped. Returns the stale git locks removed (a dead attempt's).
pub fn prepare(
    town: &Town,
    rig: &str,
    name: &str,
    worktree: &Path,
    branch: &str,
    fresh: bool,
) -> Result<Vec<PathBuf>> {
    let p = places(town, rig, name);
    let repo_dir = town.repo_dir(rig);
    let repo = git2::Repository::open(&repo_dir)?;
    for d in [
        &p.box_dir.join("inbox"),
        &p.box_dir.join("outbox"),
        &p.outbox,
    ] {
        mkdir(d)?;
    }
    if fresh && p.git.exists() {
        std::fs::remove_dir_all(&p.git)
            .map_err(|e| Error::io(format!("removing {}", p.git.display()), e))?;
    }
    let (ref_dir, leaf) = split_branch(branch);
    let admin = p.git.join("admin");
    let made_admin = !admin.exists();
    for d in ["admin", "refs", "logs", "objects"] {
        mkdir(&p.git.join(d))?;
    }
    // Mount points in the rig repository (a user's `git pack-refs` may remove them).
    let git_dir = repo_dir.join(".git");
    mkdir(&git_dir.join(&ref_dir))?;
    mkdir(&git_dir.join("logs").join(&ref_dir))?;
    // The agent's view of its worktree's git dir: host-written files on a fresh start.
    let host_admin = crate::git::admin_dir(&repo, worktree);
    if made_admin {
        let index = host_admin.join("index");
        if index.exists() {
            std::fs::copy(&index, admin.join("index"))
                .map_err(|e| Error::io(format!("copying {}", index.display()), e))?;
        }
    }
    crate::util::write_atomic(
        &admin.join("HEAD"),
        format!("ref: refs/heads/{branch}\n").as_bytes(),
    )?;
    crate::util::write_atomic(&admin.join("commondir"), b"../..\n")?;
    crate::util::write_atomic(
        &admin.join("gitdir"),
        format!("{}\n", worktree.join(".git").display()).as_bytes(),
    )?;
    // The branch as the host knows it, unless the agent's own (not yet imported) is there.
    let removed = clear_stale_locks(&p, &leaf);
    let refs = p.git.join("refs");
    let host_head = crate::git::branch_head(&repo, branch)?
        .ok_or_else(|| Error::git(format!("branch {branch} is missing in rig {rig}")))?;
    if claimed_head(&p, branch).is_none() {
        let _ = Dir::open(&refs).map(|d| d.remove(&leaf));
        crate::util::write_atomic(&refs.join(&leaf), format!("{host_head}\n").as_bytes())?;
    }
    if ref_dir == "refs/heads" {
        // Mounted over refs/heads: keep the default branch visible to the agent.
        let rig_row = super::rig::get(town, rig)?;
        if rig_row.default_branch != leaf
            && let Some(h) = crate::git::branch_head(&repo, &rig_row.default_branch)?
        {
            crate::util::write_atomic(
                &refs.join(&rig_row.default_branch),
                format!("{h}\n").as_bytes(),
            )?;
        }
    }
    hand_over(&p.outbox)?;
    hand_over(&p.git)?;
    if worktree.exists() {
        hand_over_tree(worktree, fresh)?; // (clone mode makes none on the host)
    }
    Ok(removed)
}

/// The mounts and git environment of an agent's container.
pub fn mounts(
    town: &Town,
    rig: &str,
    name: &str,
    worktree: &Path,
    branch: &str,
) -> (Vec<Bind>, Vec<Tmpfs>, Vec<(String, String)>) {
    let p = places(town, rig, name);
    let git_dir = town.repo_dir(rig).join(".git");
    let (ref_dir, _) = split_branch(branch);
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let bind = |source: &Path, target: &Path, read_only: bool| Bind {
        source: s(source),
        target: s(target),
        read_only,
    };
    let objects = p.git.join("objects");
    let binds = vec![
        bind(worktree, worktree, false),
        bind(&git_dir, &git_dir, true),
        bind(
            &p.git.join("admin"),
            &git_dir
                .join("worktrees")
                .join(crate::git::worktree_name(worktree)),
            false,
        ),
        bind(&p.git.join("refs"), &git_dir.join(&ref_dir), false),
        bind(
            &p.git.join("logs"),
            &git_dir.join("logs").join(&ref_dir),
            false,
        ),
        bind(&objects, &objects, false),
        bind(&p.box_dir, Path::new(crate::agent::MAILBOX), true),
        bind(
            &p.outbox,
            &Path::new(crate::agent::MAILBOX).join("outbox"),
            false,
        ),
    ];
    // Other agents' worktree registrations are none of this agent's business.
    let tmpfs = vec![Tmpfs {
        target: s(&git_dir.join("worktrees")),
        options: "size=1m,mode=0755".into(),
    }];
    let mut env = vec![
        ("GIT_OBJECT_DIRECTORY".to_string(), s(&objects)),
        (
            "GIT_ALTERNATE_OBJECT_DIRECTORIES".to_string(),
            // The list is `:`-separated; a quoted entry may hold `:` (a town path can).
            quote_c(&s(&git_dir.join("objects"))),
        ),
    ];
    env.extend(git_config_env(&[
        ("safe.directory", "*"),
        ("gc.auto", "0"),
        ("maintenance.auto", "false"),
    ]));
    (binds, tmpfs, env)
}

/// Clone mode: what an agent's container gets instead of `mounts` — nothing of the
/// host, only tmpfs: `/run/gt` (its mailbox and secrets, filled by `gt agent run` from
/// `gt serve`) and its worktree's path (the clone). The tmpfs is the engine's (root's),
/// so the agent's git is told not to mind.
pub fn clone_mounts(worktree: &Path) -> (Vec<Tmpfs>, Vec<(String, String)>) {
    let t = |target: &str, options: &str| Tmpfs {
        target: target.into(),
        options: options.into(),
    };
    (
        vec![
            t(crate::agent::remote::RUN_DIR, "size=64m,mode=1777"),
            t(&worktree.to_string_lossy(), "size=4g,mode=1777"),
        ],
        git_config_env(&[("safe.directory", "*")]),
    )
}

/// Git configuration given through the environment (`GIT_CONFIG_COUNT`, `_KEY_n`,
/// `_VALUE_n`): it wins over every file, and no file of the agent's can add to it.
fn git_config_env(config: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![("GIT_CONFIG_COUNT".to_string(), config.len().to_string())];
    for (i, (k, v)) in config.iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), k.to_string()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), v.to_string()));
    }
    env
}

/// Git's C-style quoting of one entry of a path list.
fn quote_c(path: &str) -> String {
    format!("\"{}\"", path.replace('\\', "\\\\").replace('"', "\\\""))
}

/// gt inside any image, glibc or not: the host's binary and each shared library it was
/// linked against (the dynamic loader included) mounted read-only into `/gt-lib`, and at
/// `/usr/local/bin/gt` a two-line script that runs it through that loader. Nothing is
/// copied: only the script is written (once, under `.gt/agent-runtime/`).
pub fn gt_binds(town: &Town, exe: &Path) -> Result<Vec<Bind>> {
    // The same binary for the life of this process: asked of ldd once (a sling of many
    // beads, a patrol pass of many re-dispatches).
    static LIBS: std::sync::OnceLock<(PathBuf, Vec<PathBuf>)> = std::sync::OnceLock::new();
    let libs = match LIBS.get() {
        Some((bin, libs)) if bin == exe => libs.clone(),
        _ => {
            let libs = crate::util::shared_libs(exe)?;
            let _ = LIBS.set((exe.to_path_buf(), libs.clone()));
            libs
        }
    };
    let loader = libs
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .find(|n| n.starts_with("ld-"));
    // A static gt needs no loader: the script runs it as it is.
    let run = match &loader {
        Some(ld) => format!("exec /gt-lib/{ld} --library-path /gt-lib /gt-lib/gt \"$@\"\n"),
        None => "exec /gt-lib/gt \"$@\"\n".to_string(),
    };
    let body = format!("#!/bin/sh\n{run}");
    let dir = town.root.join(super::DB_DIR).join("agent-runtime");
    let script = dir.join(format!("gt-{}", loader.as_deref().unwrap_or("static")));
    if std::fs::read(&script).ok().as_deref() != Some(body.as_bytes()) {
        mkdir(&dir)?;
        crate::util::write_atomic_mode(&script, body.as_bytes(), Some(0o755))?;
    }
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let mut binds: Vec<Bind> = libs
        .iter()
        .filter_map(|p| {
            // The real file: a bind of a symlink would bind what it points to anyway.
            let real = std::fs::canonicalize(p).ok()?;
            Some(Bind {
                source: s(&real),
                target: format!("/gt-lib/{}", p.file_name()?.to_string_lossy()),
                read_only: true,
            })
        })
        .collect();
    binds.push(Bind {
        source: s(exe),
        target: "/gt-lib/gt".into(),
        read_only: true,
    });
    binds.push(Bind {
        source: s(&script),
        target: "/usr/local/bin/gt".into(),
        read_only: true,
    });
    Ok(binds)
}

/// Set the agent's private ref of `branch` to `head`, as the host (after `gt serve` took
/// a push of it into the rig repository).
pub fn claim_head(town: &Town, rig: &str, name: &str, branch: &str, head: &str) -> Result<()> {
    let p = places(town, rig, name);
    let (_, leaf) = split_branch(branch);
    let refs = p.git.join("refs");
    mkdir(&refs)?;
    let _ = Dir::open(&refs).map(|d| d.remove(&leaf));
    crate::util::write_atomic(&refs.join(&leaf), format!("{head}\n").as_bytes())
}

/// The head the agent's private ref claims for `branch`: 40 hex digits in a small
/// regular file, or nothing.
fn claimed_head(p: &Places, branch: &str) -> Option<String> {
    let (_, leaf) = split_branch(branch);
    let data = Dir::open(&p.git.join("refs")).ok()?.read(&leaf, 128).ok()?;
    let text = String::from_utf8(data).ok()?;
    let head = text.trim_end_matches('\n');
    is_hex(head, 40).then(|| head.to_string())
}

/// Remove the git lock files a killed agent left in its private state (`index.lock`,
/// `HEAD.lock`, its branch's `.lock`): git refuses every later commit while they exist.
/// Only call this when no container of the agent runs.
pub fn clear_stale_locks(p: &Places, leaf: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if let Ok(d) = Dir::open(&p.git.join("admin")) {
        for e in d.entries(10_000).unwrap_or_default() {
            if e.name.ends_with(".lock") && d.remove(&e.name).unwrap_or(false) {
                removed.push(d.path().join(&e.name));
            }
        }
    }
    let lock = format!("{leaf}.lock");
    if let Ok(d) = Dir::open(&p.git.join("refs"))
        && d.remove(&lock).unwrap_or(false)
    {
        removed.push(d.path().join(lock));
    }
    removed
}

/// Take an agent's committed work into the rig repository: its private branch head is
/// read as data, its new objects copied (bounded) to a host-only staging directory and
/// imported by id, and the branch moved forward to it. Returns the branch's head after.
/// Call only when no container of the agent runs.
pub fn import(town: &Town, rig: &str, name: &str, branch: &str) -> Result<String> {
    import_named(town, rig, name, branch, None)
}

/// As `import`, of exactly the head the agent's done named (`named`, when it is a commit
/// id): commits the agent made after its done are its leftovers and never imported.
/// Without one, the head its private ref claims.
pub fn import_named(
    town: &Town,
    rig: &str,
    name: &str,
    branch: &str,
    named: Option<&str>,
) -> Result<String> {
    let p = places(town, rig, name);
    let repo_dir = town.repo_dir(rig);
    let repo = git2::Repository::open(&repo_dir)?;
    let base = crate::git::branch_head(&repo, branch)?.ok_or_else(|| {
        Error::git(format!(
            "branch {branch} of {rig}/{name} is gone: its work is lost"
        ))
    })?;
    let named = named.filter(|h| is_hex(h, 40)).map(str::to_string);
    let Some(head) = named.or_else(|| claimed_head(&p, branch)) else {
        return Ok(base); // nothing claimed (or unreadable): the host's branch stands
    };
    // A bead the merge queue sent back may have been rebased onto its target.
    let onto = std::fs::read_to_string(super::mq::land::rebase_marker(town, rig, branch))
        .ok()
        .map(|s| s.trim().to_string());
    let onto = onto.as_deref();
    if head == base || repo.find_commit(git2::Oid::from_str(&head)?).is_ok() {
        // Objects known already: only the ancestry check and the move remain.
        crate::git::import_work(
            &repo_dir,
            &repo_dir.join(".git").join("objects"),
            branch,
            &base,
            &head,
            onto,
        )?;
        return Ok(head);
    }
    let staging = crate::util::TempDir::new_in(&town.rig_dir(rig), "import")?;
    let result = stage_objects(&p.git.join("objects"), staging.path(), &repo).and_then(|()| {
        crate::git::import_work(&repo_dir, staging.path(), branch, &base, &head, onto)
    });
    drop(staging);
    result.map(|()| head)
}

/// Whether `e` (of `import`) refuses the agent's work itself (over the limits, objects
/// missing or not git's, a head that does not descend from its branch): the agent's
/// doing, the same on every try; any other error may pass.
pub fn import_refused(e: &Error) -> bool {
    // The host's own fault (its disk full) is never the agent's: it is retried, not final.
    matches!(e, Error::Git { msg, .. }
        if (msg.starts_with(STAGE_REFUSED) || crate::git::import_refused(msg))
            && !crate::util::is_host_fault(msg))
}

const STAGE_REFUSED: &str = "the agent's objects were not imported: ";

/// Copy the loose objects and packs of an agent's object directory that `repo` lacks,
/// through the bounded reader: names must be git's own (hex), entries regular files.
/// Everything is listed, counted and sized first (listing stops at the file limit), so
/// an object directory over the limits is refused before one file is copied.
fn stage_objects(objects: &Path, staging: &Path, repo: &git2::Repository) -> Result<()> {
    let refuse = |why: String| Error::git(format!("{STAGE_REFUSED}{why}"));
    let over = || {
        refuse(format!(
            "over the import limit ({MAX_IMPORT_BYTES} bytes, {MAX_IMPORT_FILES} files)"
        ))
    };
    let src = match Dir::open(objects) {
        Ok(d) => d,
        Err(Refused::Missing) => return Ok(()),
        Err(e) => return Err(refuse(format!("{}: {e}", objects.display()))),
    };
    let odb = repo.odb()?;
    // 1. What would be copied: (directory, its files), counted and sized by lstat.
    let (mut bytes, mut files) = (0u64, 0usize);
    let mut plan: Vec<(String, Dir, Vec<String>)> = Vec::new();
    for e in src
        .entries(MAX_IMPORT_FILES + 1)
        .map_err(|e| refuse(e.to_string()))?
    {
        let loose = e.is_dir && is_hex(&e.name, 2);
        if !(loose || e.is_dir && e.name == "pack") {
            continue;
        }
        let sub = src
            .sub(&e.name)
            .map_err(|x| refuse(format!("{}: {x}", e.name)))?;
        let mut take = Vec::new();
        for f in sub
            .entries(MAX_IMPORT_FILES + 1 - files)
            .map_err(|x| refuse(x.to_string()))?
        {
            let ok = if loose {
                is_hex(&f.name, 38)
                    && !git2::Oid::from_str(&format!("{}{}", e.name, f.name))
                        .is_ok_and(|id| odb.exists(id))
            } else {
                f.name
                    .strip_suffix(".pack")
                    .or_else(|| f.name.strip_suffix(".idx"))
                    .and_then(|s| s.strip_prefix("pack-"))
                    .is_some_and(|h| is_hex(h, 40))
            };
            if !f.is_file || !ok {
                continue;
            }
            files += 1;
            let size = std::fs::symlink_metadata(objects.join(&e.name).join(&f.name))
                .map_or(0, |m| m.len());
            bytes = bytes.saturating_add(size);
            if files > MAX_IMPORT_FILES || bytes > MAX_IMPORT_BYTES {
                return Err(over());
            }
            take.push(f.name);
        }
        if !take.is_empty() {
            plan.push((e.name, sub, take));
        }
    }
    // 2. The copies, each bounded by what is left (a file may grow after it was sized).
    let mut copied = 0u64;
    for (dir, sub, names) in plan {
        let out = staging.join(&dir);
        mkdir(&out)?;
        for name in names {
            let left = MAX_IMPORT_BYTES.saturating_sub(copied);
            let n = sub
                .copy_to(&name, &out.join(&name), left)
                .map_err(|x| refuse(format!("{dir}/{name}: {x}")))?;
            copied += n;
            if copied > MAX_IMPORT_BYTES {
                return Err(over());
            }
        }
    }
    Ok(())
}

/// Paths of the agent's worktree that differ from `head`, looked at read-only with the
/// host's configuration and a host copy of the agent's index. None when that cannot be
/// told (then the worktree must be kept).
pub fn uncommitted(
    town: &Town,
    rig: &str,
    name: &str,
    worktree: &Path,
    head: &str,
) -> Option<Vec<String>> {
    if !small_enough_to_compare(worktree) {
        return None;
    }
    let p = places(town, rig, name);
    let staging = crate::util::TempDir::new_in(&town.rig_dir(rig), "index").ok()?;
    let copy = staging.path().join("index");
    let repo_dir = town.repo_dir(rig);
    // Without an agent's own index (a worktree no agent ran in), the host's registration
    // has the one git wrote at checkout.
    let host_index = git2::Repository::open(&repo_dir)
        .ok()
        .map(|r| crate::git::admin_dir(&r, worktree).join("index"))
        .filter(|i| i.is_file());
    let agent_index =
        Dir::open(&p.git.join("admin")).and_then(|d| d.copy_to("index", &copy, MAX_INDEX_BYTES));
    let index = match agent_index {
        Ok(_) => Some(copy.as_path()),
        Err(Refused::Missing) => host_index.as_deref(),
        Err(_) => return None,
    };
    crate::git::uncommitted(&repo_dir, worktree, index, head).ok()
}

/// A worktree is compared with its branch (which may hash its files) only when that is
/// cheap: at most `MAX_COMPARE_FILES` entries, no file over `MAX_COMPARE_FILE` and
/// `MAX_COMPARE_BYTES` in all, by apparent size (a sparse giant counts whole). Looked at
/// with lstat only; symlinks are not followed. Otherwise it is kept for a human.
fn small_enough_to_compare(worktree: &Path) -> bool {
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut stack = vec![worktree.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            return false;
        };
        for e in entries.flatten() {
            files += 1;
            if files > MAX_COMPARE_FILES {
                return false;
            }
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                return false;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                if m.len() > MAX_COMPARE_FILE {
                    return false;
                }
                bytes += m.len();
                if bytes > MAX_COMPARE_BYTES {
                    return false;
                }
            }
        }
    }
    true
}

/// Drop an agent's private git state (its work has been imported, or is abandoned).
pub fn remove_private(town: &Town, rig: &str, name: &str) -> Result<()> {
    let p = places(town, rig, name);
    if p.git.exists() {
        std::fs::remove_dir_all(&p.git)
            .map_err(|e| Error::io(format!("removing {}", p.git.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_branch_splits_into_its_ref_dir_and_leaf() {
        assert_eq!(
            split_branch("polecat/furiosa/api-3k9"),
            ("refs/heads/polecat/furiosa".into(), "api-3k9".into())
        );
        assert_eq!(split_branch("topic"), ("refs/heads".into(), "topic".into()));
    }
}
