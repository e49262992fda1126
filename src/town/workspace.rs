//! What an agent's container may write, and how the host takes its work back.
//!
//! The rig repository's hooks and objects are mounted read-only; other agents' worktree
//! registrations are hidden. Each agent writes only its worktree, its mailbox's outbox,
//! and a private git state under `agents/<rig>/<name>/git/`: `admin/` (its worktree's
//! HEAD and index), `objects/` (its new objects; the rig's objects are read-only
//! alternates) and `common/`, a private git dir mounted where the rig's is (HEAD, refs,
//! packed-refs, logs, config, info/, git's lock files), seeded by the host with a copy
//! of the rig's refs, config and info/. So git works there as anywhere (rebase, stash,
//! tags and scratch branches, `git config`, pack-refs, gc): whatever the agent does to
//! those is its own view only; no host process reads that config or those refs. The
//! host reads one of them, the agent's branch, as data (loose or packed), only through
//! `crate::untrusted`, only when no container of the agent runs, and moves the branch in
//! the rig repository itself, forward only.

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
    /// The private git state: admin/, objects/, common/.
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

/// The largest private `packed-refs` the host reads (an agent's own refs, packed by its gc).
const MAX_PACKED_REFS: u64 = 32 << 20;
/// The largest private stash reflog carried over to the agent's next container.
const MAX_STASH_LOG: u64 = 16 << 20;
/// What of the rig's git dir is the rig's, mounted read-only into the private one.
const RIG_READ_ONLY: [&str; 1] = ["hooks"];
/// The rig's config and each file of its info/ copied into a private git dir: at most.
const MAX_RIG_FILE: u64 = 1 << 20;

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
    let admin = p.git.join("admin");
    let made_admin = !admin.exists();
    for d in ["admin", "objects"] {
        mkdir(&p.git.join(d))?;
    }
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
    let mut removed = clear_stale_locks(&p, branch);
    removed.extend(clear_stale_operations(&p));
    let host_head = crate::git::branch_head(&repo, branch)?
        .ok_or_else(|| Error::git(format!("branch {branch} is missing in rig {rig}")))?;
    // The branch as the host knows it, unless the agent's own (not yet imported) is there.
    let head = claimed_head(&p, branch).unwrap_or(host_head);
    let default_branch = super::rig::get(town, rig)?.default_branch;
    seed_common(&p, &repo, branch, &head, &default_branch)?;
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
    let _ = branch; // its branch is in its private git dir (`prepare`), like every ref
    let p = places(town, rig, name);
    let git_dir = town.repo_dir(rig).join(".git");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let bind = |source: &Path, target: &Path, read_only: bool| Bind {
        source: s(source),
        target: s(target),
        read_only,
    };
    let objects = p.git.join("objects");
    let mut binds = vec![
        bind(worktree, worktree, false),
        // Its own ref store where the rig's git dir is; the rig's own parts over it.
        bind(&p.git.join(COMMON), &git_dir, false),
        bind(&git_dir.join("objects"), &git_dir.join("objects"), true),
        bind(
            &p.git.join("admin"),
            &git_dir
                .join("worktrees")
                .join(crate::git::worktree_name(worktree)),
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
    for part in RIG_READ_ONLY {
        let rig_part = git_dir.join(part);
        if rig_part.exists() {
            binds.push(bind(&rig_part, &rig_part, true));
        }
    }
    // Other agents' worktree registrations are none of this agent's business, and it
    // registers none of its own (the tmpfs is root's).
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

/// The private ref store's directory under `Places::git`.
const COMMON: &str = "common";

/// Write a fresh private git dir for the agent (see the module doc): the rig's config and
/// info/ files, its refs (its branches but other agents', tags, remote-tracking refs)
/// packed, `HEAD` at the default branch, the agent's `branch` loose at `head`, and what the agent had of its
/// own to keep across containers (its stash), read from the old store as data. The old
/// store is set aside and removed whole (never written into: it is the agent's).
fn seed_common(
    p: &Places,
    repo: &git2::Repository,
    branch: &str,
    head: &str,
    default_branch: &str,
) -> Result<()> {
    let common = p.git.join(COMMON);
    let stash = private_ref(&common, "refs/stash");
    let stash_log = stash.as_ref().and_then(|_| {
        let d = Dir::open(&common)
            .ok()?
            .sub("logs")
            .ok()?
            .sub("refs")
            .ok()?;
        d.read("stash", MAX_STASH_LOG).ok()
    });
    let old = p.git.join("common.old");
    let rm = |d: &Path| -> Result<()> {
        if std::fs::symlink_metadata(d).is_ok() {
            std::fs::remove_dir_all(d)
                .map_err(|e| Error::io(format!("removing {}", d.display()), e))?;
        }
        Ok(())
    };
    rm(&old)?;
    if std::fs::symlink_metadata(&common).is_ok() {
        std::fs::rename(&common, &old)
            .map_err(|e| Error::io(format!("setting {} aside", common.display()), e))?;
    }
    for d in ["refs/heads", "refs/tags", "logs", "objects", "worktrees"] {
        mkdir(&common.join(d))?;
    }
    // Mount points of the rig's own parts (made here, not by the engine as root).
    for part in RIG_READ_ONLY {
        match std::fs::metadata(repo.path().join(part)) {
            Ok(m) if m.is_dir() => mkdir(&common.join(part))?,
            Ok(_) => crate::util::write_atomic(&common.join(part), b"")?,
            Err(_) => {}
        }
    }
    // The rig's own (host-written) config and info/, as the agent's to change.
    let copy = |from: &Path, to: &Path| -> Result<()> {
        match std::fs::symlink_metadata(from) {
            Ok(m) if m.is_file() && m.len() <= MAX_RIG_FILE => {
                let data = std::fs::read(from)
                    .map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
                crate::util::write_atomic(to, &data)
            }
            _ => Ok(()),
        }
    };
    copy(&repo.path().join("shallow"), &common.join("shallow"))?;
    agent_config(&repo.path().join("config"), &common.join("config"))?;
    mkdir(&common.join("info"))?;
    if let Ok(entries) = std::fs::read_dir(repo.path().join("info")) {
        for e in entries.flatten() {
            copy(&e.path(), &common.join("info").join(e.file_name()))?;
        }
    }
    crate::util::write_atomic(
        &common.join("HEAD"),
        format!("ref: refs/heads/{default_branch}\n").as_bytes(),
    )?;
    let own = format!("refs/heads/{branch}");
    let mut packed: Vec<(String, String)> = Vec::new();
    for r in repo.references()?.flatten() {
        let (Ok(name), Some(id)) = (r.name(), r.target()) else {
            continue; // symbolic (origin/HEAD) or not UTF-8: not needed to work
        };
        let shared = name.starts_with("refs/tags/")
            || name.starts_with("refs/remotes/")
            || name.starts_with("refs/heads/") && !name.starts_with("refs/heads/polecat/");
        if shared && name != own {
            packed.push((name.to_string(), id.to_string()));
        }
    }
    packed.sort();
    let text: String = packed
        .iter()
        .map(|(name, id)| format!("{id} {name}\n"))
        .collect();
    crate::util::write_atomic(&common.join("packed-refs"), text.as_bytes())?;
    write_loose(&common, &own, head)?;
    if let Some(stash) = stash {
        write_loose(&common, "refs/stash", &stash)?;
        if let Some(log) = stash_log {
            mkdir(&common.join("logs/refs"))?;
            crate::util::write_atomic(&common.join("logs/refs/stash"), &log)?;
        }
    }
    rm(&old)
}

/// The rig's config as the agent's own, made of what git needs to work in the box (its
/// `core` and `extensions` settings, remotes' URLs and refspecs, branches' upstreams),
/// with no credential: a URL's user and password (`https://user:TOKEN@host/…`) are
/// left out, and everything else (`http.*.extraHeader`, `credential.*`, `url.*`,
/// `core.askPass`, `core.sshCommand`) is not copied. The key never enters a container.
fn agent_config(from: &Path, to: &Path) -> Result<()> {
    match std::fs::symlink_metadata(from) {
        Ok(m) if m.is_file() && m.len() <= MAX_RIG_FILE => {}
        _ => return Ok(()),
    }
    let cfg = git2::Config::open(from)?;
    // (section, subsection) → its lines, in the order met.
    type Section = (String, Option<String>);
    let mut sections: Vec<(Section, Vec<String>)> = Vec::new();
    let mut entries = cfg.entries(None)?;
    while let Some(e) = entries.next() {
        let e = e?;
        let (Ok(name), Ok(value)) = (e.name(), e.value()) else {
            continue;
        };
        let Some((section, rest)) = name.split_once('.') else {
            continue;
        };
        let (sub, key) = match rest.rsplit_once('.') {
            Some((sub, key)) => (Some(sub.to_string()), key),
            None => (None, rest),
        };
        let value = match (section, sub.is_some(), key) {
            ("core", false, "askpass" | "sshcommand") => continue,
            ("core" | "extensions", false, _) => value.to_string(),
            ("remote", true, "url" | "pushurl") => without_userinfo(value),
            ("remote", true, "fetch") | ("branch", true, "remote" | "merge") => value.to_string(),
            _ => continue,
        };
        let line = format!("\t{key} = {}\n", config_quote(&value));
        let at = (section.to_string(), sub);
        match sections.iter_mut().find(|(s, _)| *s == at) {
            Some((_, lines)) => lines.push(line),
            None => sections.push((at, vec![line])),
        }
    }
    let mut text = String::new();
    for ((section, sub), lines) in sections {
        match sub {
            Some(sub) => text += &format!("[{section} {}]\n", config_quote(&sub)),
            None => text += &format!("[{section}]\n"),
        }
        text.extend(lines);
    }
    crate::util::write_atomic(to, text.as_bytes())
}

/// `url` without the user and password of a `scheme://user:password@host/…` URL.
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string(); // a path, or scp-like `git@host:path`: no password there
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A git config value or subsection name in double quotes, `\\`, `"` and line breaks
/// escaped.
fn config_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out += "\\\\",
            '"' => out += "\\\"",
            '\n' => out += "\\n",
            '\t' => out += "\\t",
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Write the loose ref `name` (`refs/heads/…`) in a private ref store only the host can
/// reach now (freshly made, or a clone-mode agent's, which is never mounted).
fn write_loose(common: &Path, name: &str, id: &str) -> Result<()> {
    let path = common.join(name);
    let mut at = common.to_path_buf();
    for part in Path::new(name)
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
    {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| !m.is_dir()) {
            return Err(Error::git(format!(
                "{} is not a directory of refs",
                at.display()
            )));
        }
    }
    if let Some(parent) = path.parent() {
        mkdir(parent)?;
    }
    let _ = std::fs::remove_file(&path); // a symlink or whatever was there: not followed
    crate::util::write_atomic(&path, format!("{id}\n").as_bytes())
}

/// Set the agent's private ref of `branch` to `head`, as the host (after `gt serve` took
/// a push of it into the rig repository).
pub fn claim_head(town: &Town, rig: &str, name: &str, branch: &str, head: &str) -> Result<()> {
    let p = places(town, rig, name);
    let common = p.git.join(COMMON);
    mkdir(&common)?;
    write_loose(&common, &format!("refs/heads/{branch}"), head)
}

/// The commit the ref `name` of a private ref store names, as git would read it there
/// (loose first, else `packed-refs`), read as data: nothing followed, sizes bounded, a
/// commit id or nothing.
fn private_ref(common: &Path, name: &str) -> Option<String> {
    let parse = |text: &str| {
        let head = text.trim_end_matches('\n');
        is_hex(head, 40).then(|| head.to_string())
    };
    let top = Dir::open(common).ok()?;
    let parts: Vec<&str> = name.split('/').collect();
    let (leaf, dirs) = parts.split_last()?;
    let mut dir: Option<Dir> = None;
    let mut missing = false;
    for d in dirs {
        match dir.as_ref().unwrap_or(&top).sub(d) {
            Ok(sub) => dir = Some(sub),
            Err(Refused::Missing) => {
                missing = true;
                break;
            }
            Err(_) => return None,
        }
    }
    if !missing {
        match dir.as_ref().unwrap_or(&top).read(leaf, 128) {
            Ok(data) => return parse(&String::from_utf8(data).ok()?),
            Err(Refused::Missing) => {}
            Err(_) => return None,
        }
    }
    let packed = top.read("packed-refs", MAX_PACKED_REFS).ok()?;
    let packed = String::from_utf8_lossy(&packed);
    packed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .filter_map(|l| l.split_once(' '))
        .find(|(_, n)| *n == name)
        .and_then(|(id, _)| parse(id))
}

/// The head the agent's private ref claims for `branch`: 40 hex digits, loose or packed,
/// or nothing.
fn claimed_head(p: &Places, branch: &str) -> Option<String> {
    private_ref(&p.git.join(COMMON), &format!("refs/heads/{branch}"))
}

/// Remove the git lock files a killed agent left in its private state (`index.lock`,
/// `HEAD.lock`, `packed-refs.lock`, its branch's `.lock`): git refuses every later commit
/// while they exist. Only call this when no container of the agent runs.
pub fn clear_stale_locks(p: &Places, branch: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let mut clear = |d: &Dir, only: Option<&str>| {
        for e in d.entries(10_000).unwrap_or_default() {
            let ours = only.is_none_or(|n| e.name == n);
            if ours && e.name.ends_with(".lock") && d.remove(&e.name).unwrap_or(false) {
                removed.push(d.path().join(&e.name));
            }
        }
    };
    if let Ok(d) = Dir::open(&p.git.join("admin")) {
        clear(&d, None);
    }
    if let Ok(top) = Dir::open(&p.git.join(COMMON)) {
        clear(&top, None);
        let (ref_dir, leaf) = split_branch(branch);
        let mut d = Some(top);
        for part in ref_dir.split('/') {
            d = d.and_then(|d| d.sub(part).ok());
        }
        if let Some(d) = d {
            clear(&d, Some(&format!("{leaf}.lock")));
        }
    }
    removed
}

/// Remove what a git operation killed in the middle left in an agent's private state:
/// a rebase, merge, cherry-pick or revert in progress (its worktree's HEAD is the branch
/// again, so that state no longer matches and every later rebase refuses). Nothing
/// committed is lost: the branch, the stash and the objects stay, and HEAD's reflog
/// still names the commits. Only call this when no container of the agent runs.
pub fn clear_stale_operations(p: &Places) -> Vec<PathBuf> {
    fn remove_tree(d: &Dir, depth: usize) -> bool {
        if depth > 8 {
            return false;
        }
        for e in d.entries(10_000).unwrap_or_default() {
            if e.is_dir {
                if let Ok(sub) = d.sub(&e.name) {
                    remove_tree(&sub, depth + 1);
                }
                let _ = d.remove_dir(&e.name);
            } else {
                let _ = d.remove(&e.name);
            }
        }
        true
    }
    let mut removed = Vec::new();
    if let Ok(d) = Dir::open(&p.git.join("admin")) {
        for e in d.entries(10_000).unwrap_or_default() {
            let name = e.name.as_str();
            let stale_dir = matches!(name, "rebase-merge" | "rebase-apply" | "sequencer");
            let stale_file = matches!(
                name,
                "MERGE_HEAD"
                    | "MERGE_MSG"
                    | "MERGE_MODE"
                    | "MERGE_RR"
                    | "AUTO_MERGE"
                    | "CHERRY_PICK_HEAD"
                    | "REVERT_HEAD"
                    | "REBASE_HEAD"
            );
            let gone = if stale_dir && e.is_dir {
                d.sub(name).is_ok_and(|sub| remove_tree(&sub, 0))
                    && d.remove_dir(name).unwrap_or(false)
            } else if (stale_file || stale_dir) && !e.is_dir {
                d.remove(name).unwrap_or(false)
            } else {
                false
            };
            if gone {
                removed.push(d.path().join(name));
            }
        }
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

    #[test]
    fn a_urls_user_and_password_are_left_out_of_the_agents_config() {
        for (url, want) in [
            (
                "https://u:tok@git.example.com/o/r.git",
                "https://git.example.com/o/r.git",
            ),
            ("https://tok@host/a@b", "https://host/a@b"),
            ("ssh://git@host:22/r", "ssh://host:22/r"),
            ("https://host/r.git", "https://host/r.git"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("/srv/repos/api", "/srv/repos/api"),
        ] {
            assert_eq!(without_userinfo(url), want, "{url}");
        }
        assert_eq!(config_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
