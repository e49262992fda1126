//! Git: the rig's clone, polecat worktrees and branches (git2), and the network
//! operations that go through the user's `git` so credential helpers and ssh agents
//! apply (as cargo's `git-fetch-with-cli` does).

use crate::error::{Error, IoContext, Result};
use git2::{BranchType, Repository, WorktreeAddOptions, WorktreePruneOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A SOURCE is a URL when it has a scheme or the scp-like `host:path` form.
pub fn is_url(source: &str) -> bool {
    source.contains("://")
        || (source.contains(':') && !source.starts_with('/') && !source.starts_with('.') && {
            let before = source.split(':').next().unwrap_or("");
            !before.contains('/') && before.len() > 1
        })
}

/// Clone `source` into `dest`; returns the default branch (the source's HEAD).
pub fn clone(source: &str, dest: &Path) -> Result<String> {
    let repo = if is_url(source) {
        let out = Command::new("git")
            .args(HARDENED)
            .args(["clone", "--quiet", "--no-checkout", "--", source])
            .arg(dest)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .ctx(|| "running `git clone` (is git installed?)".to_string())?;
        if !out.status.success() {
            return Err(Error::Git {
                msg: format!(
                    "cannot clone {source}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                hint: Some("check the URL and that `git clone` of it works in a shell".into()),
            });
        }
        Repository::open(dest)?
    } else {
        let src = Path::new(source);
        if Repository::open(src).is_err() {
            return Err(Error::Usage {
                msg: format!("{source} is not a git repository"),
                hint: Some("give the path of a git repository, or a URL".into()),
            });
        }
        let abs = std::path::absolute(src).ctx(|| format!("resolving {source}"))?;
        let mut b = git2::build::RepoBuilder::new();
        b.with_checkout(git2::build::CheckoutBuilder::new());
        b.clone(&abs.to_string_lossy(), dest)
            .map_err(|e| Error::git(format!("cannot clone {source}: {}", e.message())))?
    };
    let head = repo.head().map_err(|_| Error::Usage {
        msg: format!("{source} has no commits"),
        hint: Some("commit something to it first: agents branch off its default branch".into()),
    })?;
    let branch = head
        .shorthand()
        .map_err(|_| Error::git(format!("{source}: HEAD is not a branch")))?
        .to_string();
    Ok(branch)
}

/// Who holds a branch: the worktree path that has it checked out, if any.
pub fn checked_out_at(repo: &Repository, branch: &str) -> Result<Option<PathBuf>> {
    let full = format!("refs/heads/{branch}");
    if repo
        .head()
        .ok()
        .and_then(|h| h.name().ok().map(String::from))
        .as_deref()
        == Some(full.as_str())
    {
        return Ok(Some(repo.workdir().unwrap_or(repo.path()).to_path_buf()));
    }
    for name in repo.worktrees()?.iter().flatten().flatten() {
        let Ok(wt) = repo.find_worktree(name) else {
            continue;
        };
        let Ok(wrepo) = Repository::open_from_worktree(&wt) else {
            continue;
        };
        if wrepo
            .head()
            .ok()
            .and_then(|h| h.name().ok().map(String::from))
            .as_deref()
            == Some(full.as_str())
        {
            return Ok(Some(wt.path().to_path_buf()));
        }
    }
    Ok(None)
}

pub fn branch_exists(repo: &Repository, branch: &str) -> bool {
    repo.find_branch(branch, BranchType::Local).is_ok()
}

/// Add a worktree at `path` on a new branch `branch` from `base`, or (resume) on an
/// existing `branch` when `existing` is true. The worktree's name is its last path part.
pub fn add_worktree(
    repo: &Repository,
    path: &Path,
    branch: &str,
    base: &str,
    existing: bool,
) -> Result<()> {
    let reference = if existing {
        repo.find_branch(branch, BranchType::Local)?
            .into_reference()
    } else {
        let base_commit = repo
            .revparse_single(base)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| Error::git(format!("cannot resolve {base}: {}", e.message())))?;
        repo.branch(branch, &base_commit, false)?.into_reference()
    };
    let name = worktree_name(path);
    // A stale registration (its directory gone) would block the add.
    if let Ok(wt) = repo.find_worktree(&name)
        && wt.validate().is_err()
    {
        wt.prune(Some(
            WorktreePruneOptions::new().valid(true).working_tree(true),
        ))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
    }
    let mut opts = WorktreeAddOptions::new();
    opts.reference(Some(&reference));
    let added = (|| -> Result<()> {
        fail::fail_point!("git.worktree_add", |_| Err(Error::git(
            "worktree add failed (fail point git.worktree_add)"
        )));
        repo.worktree(&name, path, Some(&opts)).map_err(|e| {
            Error::git(format!(
                "cannot add worktree {}: {}",
                path.display(),
                e.message()
            ))
        })?;
        Ok(())
    })();
    let added = added.and_then(|()| {
        fail::fail_point!("git.worktree_add.before_mark");
        mark_complete(repo, path, branch)
    });
    if let Err(e) = added {
        // Leave nothing half-made behind: no partial directory or registration, and no
        // branch that this call created (a later sling would find it "already exists").
        drop(reference);
        let _ = remove_worktree(repo, path);
        if !existing {
            let _ = delete_branch(repo, branch);
        }
        return Err(e);
    }
    Ok(())
}

/// The marker of a worktree whose add (checkout included) finished: a file in its own
/// admin dir, written after the checkout and gone with the registration. A worktree
/// without it was left half-made by a killed add (or a full disk) and is never reused.
const COMPLETE: &str = "gt-complete";

/// The worktree's own git dir (`index`, `HEAD`, locks), found from the host's records:
/// the repository's `worktrees/<name>`, never through the `.git` file or `gitdir` that
/// an agent can rewrite to point anywhere.
pub fn admin_dir(repo: &Repository, worktree: &Path) -> PathBuf {
    repo.path().join("worktrees").join(worktree_name(worktree))
}

fn mark_complete(repo: &Repository, path: &Path, branch: &str) -> Result<()> {
    crate::util::write_atomic(&admin_dir(repo, path).join(COMPLETE), branch.as_bytes())
}

/// Whether the worktree at `path` was completely made for `branch` (see COMPLETE). The
/// mark lives where an agent can write, so it is read as untrusted data: only a regular
/// file (no symlink, FIFO or device is opened) of a branch name's size counts.
pub fn worktree_complete(repo: &Repository, path: &Path, branch: &str) -> bool {
    use std::io::Read;
    let mark = admin_dir(repo, path).join(COMPLETE);
    let limit = branch.len() as u64 + 1;
    let regular =
        std::fs::symlink_metadata(&mark).is_ok_and(|m| m.file_type().is_file() && m.len() < limit);
    let mut content = Vec::new();
    regular
        && std::fs::File::open(&mark)
            .and_then(|f| f.take(limit).read_to_end(&mut content))
            .is_ok()
        && content == branch.as_bytes()
}

pub fn worktree_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wt".into())
}

/// Remove a worktree's directory and its registration. The branch stays.
pub fn remove_worktree(repo: &Repository, path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).ctx(|| format!("removing worktree {}", path.display()))?;
    }
    if let Ok(wt) = repo.find_worktree(&worktree_name(path)) {
        wt.prune(Some(
            WorktreePruneOptions::new().valid(true).working_tree(true),
        ))?;
    }
    Ok(())
}

pub fn delete_branch(repo: &Repository, branch: &str) -> Result<()> {
    if let Ok(mut b) = repo.find_branch(branch, BranchType::Local) {
        b.delete()?;
    }
    Ok(())
}

/// What a worktree holds that exists nowhere else: uncommitted changes (paths), and
/// commits on its branch that are not on `base` nor on any remote-tracking ref.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Unsaved {
    pub uncommitted: Vec<String>,
    pub unpushed_commits: usize,
}

impl Unsaved {
    pub fn is_empty(&self) -> bool {
        self.uncommitted.is_empty() && self.unpushed_commits == 0
    }
}

/// What `branch` of `repo` (host refs only) holds beyond `base` and every
/// remote-tracking ref, with the `uncommitted` paths found in its worktree.
pub fn unsaved(
    repo: &Repository,
    branch: &str,
    base: &str,
    uncommitted: Vec<String>,
) -> Result<Unsaved> {
    let mut unpushed_commits = 0;
    if let Some(head) = branch_head(repo, branch)?.and_then(|h| git2::Oid::from_str(&h).ok()) {
        let mut walk = repo.revwalk()?;
        walk.push(head)?;
        if let Ok(b) = repo.revparse_single(base).and_then(|o| o.peel_to_commit()) {
            walk.hide(b.id())?;
        }
        for r in repo.references_glob("refs/remotes/*")?.flatten() {
            if let Some(oid) = r.target() {
                let _ = walk.hide(oid);
            }
        }
        unpushed_commits = walk.count();
    }
    Ok(Unsaved {
        uncommitted,
        unpushed_commits,
    })
}

/// The largest object an import takes (it is held in memory while copied).
pub const MAX_OBJECT_BYTES: u64 = 256 << 20;
/// The most one import expands to, all objects together. Bounded by what pushing it
/// costs, not by what reading it does: the host's push deflates every new object again
/// (a small pack of zero-filled blobs is gigabytes to compress), and that push runs in
/// a patrol pass.
pub const MAX_EXPANDED_BYTES: u64 = 1 << 30;

/// Copy into `repo` the objects of an agent's work: every commit from `head` back to
/// `base` (the branch's host-written head), with the trees and blobs they bring, read
/// from `staging` (a host-only copy of the agent's object directory; libgit2 checks each
/// object's hash as it reads it). Then move `branch` from `base` to `head` (compare and
/// swap), only when `head` descends from `base`: an agent moves its own branch forward,
/// never elsewhere.
pub fn import_work(
    repo_dir: &Path,
    staging: &Path,
    branch: &str,
    base: &str,
    head: &str,
    rebased_onto: Option<&str>,
) -> Result<()> {
    let refused = |why: String| Error::git(format!("work of branch {branch}{IMPORT_REFUSED}{why}"));
    let (Ok(base_id), Ok(head_id)) = (git2::Oid::from_str(base), git2::Oid::from_str(head)) else {
        return Err(refused(format!("{head:?} is not a commit id")));
    };
    if base_id == head_id {
        return Ok(());
    }
    let host = Repository::open(repo_dir)?;
    let view = Repository::open(repo_dir)?;
    view.odb()?.add_disk_alternate(&staging.to_string_lossy())?;
    let store = host.odb()?;
    let source = view.odb()?;
    // An object is read whole into memory to be written: its size (not the compressed
    // size an agent's pack has) is bounded, one by one and in all.
    let expanded = std::cell::Cell::new(0u64);
    let copy = |id: git2::Oid| -> Result<()> {
        if store.exists(id) {
            return Ok(());
        }
        let (size, _) = source
            .read_header(id)
            .map_err(|e| refused(format!("object {id}: {}", e.message())))?;
        let size = size as u64;
        if size > MAX_OBJECT_BYTES {
            return Err(refused(format!(
                "object {id} is {size} bytes, over the {MAX_OBJECT_BYTES}-byte limit of one imported object"
            )));
        }
        expanded.set(expanded.get() + size);
        if expanded.get() > MAX_EXPANDED_BYTES {
            return Err(refused(format!(
                "its objects expand to over {MAX_EXPANDED_BYTES} bytes"
            )));
        }
        let o = source
            .read(id)
            .map_err(|e| refused(format!("object {id}: {}", e.message())))?;
        let written = store.write(o.kind(), o.data())?;
        if written != id {
            return Err(refused(format!("object {id} does not hash to its id")));
        }
        Ok(())
    };
    fn tree(
        view: &Repository,
        store: &git2::Odb,
        id: git2::Oid,
        copy: &dyn Fn(git2::Oid) -> Result<()>,
    ) -> Result<()> {
        if store.exists(id) {
            return Ok(()); // a tree the host has comes with everything under it
        }
        let t = view.find_tree(id)?;
        for e in t.iter() {
            match e.kind() {
                Some(git2::ObjectType::Tree) => tree(view, store, e.id(), copy)?,
                Some(git2::ObjectType::Blob) => copy(e.id())?,
                _ => {} // submodule commits are not ours to copy
            }
        }
        copy(id)
    }
    let mut walk = view.revwalk()?;
    walk.push(head_id)
        .map_err(|e| refused(format!("commit {head}: {}", e.message())))?;
    walk.hide(base_id)?;
    if let Some(onto) = rebased_onto.and_then(|o| git2::Oid::from_str(o).ok())
        && host.find_commit(onto).is_ok()
    {
        walk.hide(onto)?;
    }
    for c in walk {
        let c = c.map_err(|e| refused(e.message().to_string()))?;
        let commit = view
            .find_commit(c)
            .map_err(|e| refused(format!("commit {c}: {}", e.message())))?;
        tree(&view, &store, commit.tree_id(), &copy)?;
        copy(c)?;
    }
    // Work sent back by the merge queue may be rebased onto the target it came back
    // from (the old head stays reachable from a host ref): descending from that target
    // is as good as descending from the branch.
    let onto = rebased_onto.and_then(|o| git2::Oid::from_str(o).ok());
    let descends = |from: git2::Oid| -> Result<bool> {
        Ok(head_id == from || host.graph_descendant_of(head_id, from)?)
    };
    if !descends(base_id)? && !onto.map(descends).transpose()?.unwrap_or(false) {
        return Err(refused(format!(
            "{head} does not descend from {base}, the branch's last known commit"
        )));
    }
    host.reference_matching(
        &format!("refs/heads/{branch}"),
        head_id,
        true,
        base_id,
        "gt: work imported from the agent",
    )?;
    Ok(())
}

/// The mark of `import_work`'s refusals (after the branch's name).
const IMPORT_REFUSED: &str = " refused: ";

/// Whether an error message is `import_work` refusing the agent's work (not a host
/// failure): the agent's doing, the same on every try.
pub fn import_refused(msg: &str) -> bool {
    msg.strip_prefix("work of branch ")
        .is_some_and(|rest| rest.contains(IMPORT_REFUSED))
}

/// Check what an agent pushed over the network before it is imported: every commit from
/// `head` back to what the agent was given (`given`: its branch's head, the rig's default
/// branch, the target it was sent back from) must be in the pushed objects (`staging`,
/// an object directory holding only the pack), and every tree or blob they use must be
/// in the pack or reachable from a `given` commit's tree. So an agent cannot make its
/// branch point at work it was never served (another agent's commits or trees, known by
/// id) and then read it back with its next clone. Tree entries git itself refuses to
/// check out are refused too: `.git` in any case (and with trailing dots or spaces),
/// `.`, `..`, empty names, names with `/` or NUL.
///
/// Returns what the pack carries that the new commits do not use (0 for a pack made of
/// exactly the new work), and the objects of the pack they use.
pub fn verify_pushed(
    repo_dir: &Path,
    staging: &Path,
    head: &str,
    given: &[&str],
) -> Result<(usize, Vec<git2::Oid>)> {
    use std::collections::HashSet;
    let refused = |why: String| Error::git(format!("push refused: {why}"));
    let head_id =
        git2::Oid::from_str(head).map_err(|_| refused(format!("{head:?} is not a commit id")))?;
    let pack = git2::Odb::new()?;
    pack.add_disk_alternate(&staging.to_string_lossy())?;
    let view = Repository::open(repo_dir)?;
    view.odb()?.add_disk_alternate(&staging.to_string_lossy())?;
    let given: Vec<git2::Oid> = given
        .iter()
        .filter_map(|g| git2::Oid::from_str(g).ok())
        .filter(|g| view.find_commit(*g).is_ok())
        .collect();
    let mut walk = view.revwalk()?;
    walk.push(head_id)
        .map_err(|e| refused(format!("commit {head}: {}", e.message())))?;
    for g in &given {
        walk.hide(*g)?;
    }
    // What the agent was given: every object under the given commits' trees (made the
    // first time an object outside the pack is met).
    let mut allowed: Option<HashSet<git2::Oid>> = None;
    let mut seen = HashSet::new();
    let mut stack = Vec::new();
    // Objects of the pack its new commits use (the pack is kept whole, see
    // `install_packs`, only when it carries nothing else).
    let mut used = Vec::new();
    for c in walk {
        let c = c.map_err(|e| refused(e.message().to_string()))?;
        if !pack.exists(c) {
            return Err(refused(format!(
                "commit {c} is not in the pushed pack: it names work this agent was never given"
            )));
        }
        used.push(c);
        let commit = view.find_commit(c)?;
        stack.push((commit.tree_id(), git2::ObjectType::Tree));
    }
    while let Some((id, kind)) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if seen.len() > 5_000_000 {
            return Err(refused("it holds over 5,000,000 objects".into()));
        }
        if pack.exists(id) {
            used.push(id);
        }
        if !pack.exists(id) {
            let known = allowed.get_or_insert_with(|| reachable_trees(&view, &given));
            if !known.contains(&id) {
                return Err(refused(format!(
                    "{} {id} is neither in the pushed pack nor in what this agent was given",
                    kind.str()
                )));
            }
            continue; // given whole, with everything under it
        }
        if kind != git2::ObjectType::Tree {
            continue;
        }
        let tree = view.find_tree(id)?;
        for e in tree.iter() {
            let name = e.name_bytes();
            if !tree_name_ok(name) {
                return Err(refused(format!(
                    "tree {id} has an entry git refuses: {:?}",
                    String::from_utf8_lossy(name)
                )));
            }
            // (A gitlink names a commit of another repository: nothing of ours.)
            if let Some(k @ (git2::ObjectType::Tree | git2::ObjectType::Blob)) = e.kind() {
                stack.push((e.id(), k));
            }
        }
    }
    let mut carried = 0usize;
    pack.foreach(|_| {
        carried += 1;
        true
    })?;
    Ok((carried.saturating_sub(used.len()), used))
}

/// Write `ids` (objects [`verify_pushed`] passed, read through `staging`) into the object
/// store of `repo_dir` as one new pack: for a pushed pack that carries more than its new
/// commits use, which is not kept whole.
pub fn write_pack_of(repo_dir: &Path, staging: &Path, ids: &[git2::Oid]) -> Result<()> {
    use std::io::Write;
    let view = Repository::open(repo_dir)?;
    view.odb()?.add_disk_alternate(&staging.to_string_lossy())?;
    let mut pb = view.packbuilder()?;
    pb.set_threads(1);
    for id in ids {
        pb.insert_object(*id, None)?;
    }
    let host = Repository::open(repo_dir)?;
    let store = host.odb()?;
    let mut w = store.packwriter()?;
    let mut failed = None;
    pb.foreach(|chunk| match w.write_all(chunk) {
        Ok(()) => true,
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    if let Some(e) = failed {
        return Err(Error::git(format!("writing a pack of pushed objects: {e}")));
    }
    w.commit()?;
    Ok(())
}

/// Every tree and blob under the trees of `commits`.
fn reachable_trees(
    repo: &Repository,
    commits: &[git2::Oid],
) -> std::collections::HashSet<git2::Oid> {
    let mut out = std::collections::HashSet::new();
    let mut stack: Vec<git2::Oid> = commits
        .iter()
        .filter_map(|c| repo.find_commit(*c).ok().map(|c| c.tree_id()))
        .collect();
    while let Some(t) = stack.pop() {
        if !out.insert(t) {
            continue;
        }
        if let Ok(tree) = repo.find_tree(t) {
            for e in tree.iter() {
                match e.kind() {
                    Some(git2::ObjectType::Tree) => stack.push(e.id()),
                    Some(git2::ObjectType::Blob) => {
                        out.insert(e.id());
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// A tree entry name git would check out: not `.git` (any case, trailing dots or spaces
/// ignored, as some filesystems do), `.`, `..`, empty, or with `/` or NUL.
fn tree_name_ok(name: &[u8]) -> bool {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return false;
    }
    let trimmed = name
        .iter()
        .rposition(|b| *b != b'.' && *b != b' ')
        .map_or(&name[..0], |i| &name[..=i]);
    !trimmed.eq_ignore_ascii_case(b".git")
}

/// Paths of `worktree` that differ from commit `head`: a read-only look with the host's
/// own configuration. `index` (a host-only copy of the agent's index) lets unchanged
/// files be skipped by their stat data; files are never followed through symlinks.
pub fn uncommitted(
    repo_dir: &Path,
    worktree: &Path,
    index: Option<&Path>,
    head: &str,
) -> Result<Vec<String>> {
    let repo = Repository::open(repo_dir)?;
    repo.set_workdir(worktree, false)?;
    if let Some(i) = index {
        let mut idx = git2::Index::open(i)?;
        repo.set_index(&mut idx)?;
    } else {
        let mut idx = git2::Index::new()?;
        repo.set_index(&mut idx)?;
    }
    let tree = repo.find_commit(git2::Oid::from_str(head)?)?.tree()?;
    let mut opts = git2::DiffOptions::new();
    // A nested repository in the worktree is the agent's: never opened (no submodule
    // status), only listed as a path.
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .ignore_submodules(true);
    let diff = repo.diff_tree_to_workdir_with_index(Some(&tree), Some(&mut opts))?;
    Ok(diff
        .deltas()
        .filter_map(|d| {
            d.new_file()
                .path()
                .or(d.old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
        })
        .collect())
}

/// The commit a branch points at.
pub fn branch_head(repo: &Repository, branch: &str) -> Result<Option<String>> {
    Ok(repo
        .find_branch(branch, BranchType::Local)
        .ok()
        .and_then(|b| b.get().target())
        .map(|o| o.to_string()))
}

/// The commit `remote` has at `branch`, asked with the user's git (credentials apply).
pub fn remote_head(
    repo_dir: &Path,
    remote: &str,
    branch: &str,
    timeout: Duration,
) -> Result<Option<String>> {
    let want = format!("refs/heads/{branch}");
    let out = git_cli_within(repo_dir, &["ls-remote", "--", remote, &want], Some(timeout))?;
    // ls-remote matches the pattern's tail (`refs/heads/x/refs/heads/main` too): only
    // the exact ref counts.
    Ok(out.lines().find_map(|l| {
        let (commit, name) = l.split_once('\t')?;
        (name == want).then(|| commit.to_string())
    }))
}

/// Every branch `remote` has, with its commit: one `git ls-remote --heads`.
pub fn remote_branches(
    repo_dir: &Path,
    remote: &str,
    timeout: Duration,
) -> Result<std::collections::HashMap<String, String>> {
    // Bounded like every network call: a remote that hangs keeps the branches (the
    // caller's "unreachable" path), it never holds a pass for ever.
    let out = git_cli_within(
        repo_dir,
        &["ls-remote", "--heads", "--", remote],
        Some(timeout),
    )?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (commit, name) = l.split_once('\t')?;
            Some((
                name.strip_prefix("refs/heads/")?.to_string(),
                commit.to_string(),
            ))
        })
        .collect())
}

/// True when `commit` is `branch`'s head or one of its ancestors (work merged into it).
pub fn is_merged_into(repo: &Repository, commit: &str, branch: &str) -> bool {
    let (Ok(c), Ok(Some(head))) = (git2::Oid::from_str(commit), branch_head(repo, branch)) else {
        return false;
    };
    let Ok(head) = git2::Oid::from_str(&head) else {
        return false;
    };
    c == head || repo.graph_descendant_of(head, c).unwrap_or(false)
}

/// Push `commit` to `remote` as `branch` with the user's git; `force` replaces a branch
/// that does not lead to it (work the merge queue sent back and the agent rebased).
pub fn push(
    repo_dir: &Path,
    remote: &str,
    commit: &str,
    branch: &str,
    force: bool,
    timeout: Duration,
) -> Result<()> {
    git_cli_within(
        repo_dir,
        &[
            // Bounded memory: large blobs are sent whole, not searched for deltas (which
            // holds a window of them in memory, gigabytes for a few 256 MiB blobs).
            "-c",
            "core.bigFileThreshold=16m",
            "-c",
            "pack.windowMemory=256m",
            "-c",
            "pack.deltaCacheSize=64m",
            "push",
            "--quiet",
            "--",
            remote,
            &format!(
                "{}{commit}:refs/heads/{branch}",
                if force { "+" } else { "" }
            ),
        ],
        Some(timeout),
    )
    .map(|_| ())
}

/// Fetch `remote`'s `branch` into the host-only ref `into` (forced: it mirrors the
/// remote) and return the commit, or None when the remote has no such branch.
pub fn fetch_branch(
    repo_dir: &Path,
    remote: &str,
    branch: &str,
    into: &str,
    timeout: Duration,
) -> Result<Option<String>> {
    let fetched = git_cli_within(
        repo_dir,
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--",
            remote,
            &format!("+refs/heads/{branch}:{into}"),
        ],
        Some(timeout),
    );
    if let Err(e) = fetched {
        // A remote without the branch is an answer, not a failure.
        if e.to_string().contains("couldn't find remote ref") {
            return Ok(None);
        }
        return Err(e);
    }
    let repo = Repository::open(repo_dir)?;
    Ok(repo.refname_to_id(into).ok().map(|o| o.to_string()))
}

/// What a compare-and-swap push found.
#[derive(Debug, PartialEq)]
pub enum CasPush {
    /// The remote's branch is `commit` now (pushed, or it was already).
    Pushed,
    /// The remote's branch was not `expected`: it moved under us (its head now).
    Moved(Option<String>),
}

/// Set `remote`'s `branch` to `commit` only if it is still `expected` (git's
/// `--force-with-lease`), then read it back. A push refused because the remote moved is
/// `Moved`, not an error; one the remote already has is `Pushed`.
pub fn push_cas(
    repo_dir: &Path,
    remote: &str,
    commit: &str,
    branch: &str,
    expected: &str,
    timeout: Duration,
) -> Result<CasPush> {
    // No look first: the lease refuses a remote that is not at `expected` (moved, or
    // at `commit` already after a crash), and the read-back below tells which.
    let pushed = git_cli_within(
        repo_dir,
        &[
            "push",
            "--quiet",
            &format!("--force-with-lease=refs/heads/{branch}:{expected}"),
            "--",
            remote,
            &format!("{commit}:refs/heads/{branch}"),
        ],
        Some(timeout),
    );
    // Read back whatever the push said: the remote's head is the truth.
    match remote_head(repo_dir, remote, branch, timeout)? {
        Some(h) if h == commit => Ok(CasPush::Pushed),
        Some(h) if h != expected => Ok(CasPush::Moved(Some(h))),
        _ => pushed.map(|_| CasPush::Moved(None)),
    }
}

/// Options of every host `git` call: hooks disabled, the `ext` transport refused.
const HARDENED: &[&str] = &[
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.ext.allow=never",
];

/// Run the user's `git` with `args`; with a deadline, a call still running then is
/// killed with everything it started (its own process group: ssh, hooks of a local
/// remote) and reported as timed out, so one hanging remote stalls nothing else.
fn git_cli_within(dir: &Path, args: &[&str], timeout: Option<Duration>) -> Result<String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("git");
    // The rig repository is host-written only (agents never see it writable), and still:
    // no hook runs, and no `ext::` transport can turn a remote URL into a command.
    cmd.current_dir(dir)
        .args(HARDENED)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        // git's own words, untranslated: a refused push is told apart by them.
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .ctx(|| "running git (is it installed?)".to_string())?;
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = child.stdout.take().map(|o| read(Box::new(o)));
    let stderr = child.stderr.take().map(|e| read(Box::new(e)));
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let status = loop {
        if let Some(st) = child.try_wait().ctx(|| "waiting for git".to_string())? {
            break st;
        }
        if let (Some(d), Some(t)) = (deadline, timeout)
            && std::time::Instant::now() >= d
        {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(std::process::Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::git(format!(
                "`git {}` timed out after {}s (patrol.push_timeout)",
                args.join(" "),
                t.as_secs_f64()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let collect = |rx: Option<std::sync::mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
            .unwrap_or_default()
    };
    let out = std::process::Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    };
    if !out.status.success() {
        return Err(Error::git(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An exclusive lock on a rig repository's worktree bookkeeping, across threads and
/// processes: libgit2's worktree add is not safe against a concurrent add in the same
/// repository (it can see a half-made worktree and call a fresh branch "checked out").
/// Released when the returned file is dropped. The lock file sits beside the repository
/// (`rigs/<rig>/worktrees.lock`), not in its `.git`: agents see `.git` (read-only, but a
/// read-only file can still be `flock`ed) and must not be able to hold the host's lock.
pub fn lock(repo_dir: &Path) -> Result<std::fs::File> {
    let path = repo_dir.with_file_name("worktrees.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    f.lock().ctx(|| format!("locking {}", path.display()))?;
    Ok(f)
}

/// Point the registration of the worktree at `path` (found by its name in the host's
/// `worktrees/`) back at `path`, and `path`'s `.git` file at the registration, when they
/// name another place: the town directory was moved (or renamed) since the worktree was
/// made, and git's absolute links still name the old one. Nothing of the old place is
/// read, followed or removed. True when something was rewritten.
pub fn repair_worktree(repo: &Repository, path: &Path) -> Result<bool> {
    let admin = admin_dir(repo, path);
    if !admin.is_dir() || !path.is_dir() {
        return Ok(false);
    }
    // Host-written (the agent's own view of them is a private copy mounted over them),
    // and still read bounded.
    let read = |p: &Path| {
        std::fs::File::open(p)
            .and_then(|f| {
                use std::io::Read;
                let mut s = String::new();
                f.take(8192).read_to_string(&mut s).map(|_| s)
            })
            .unwrap_or_default()
    };
    let gitdir = admin.join("gitdir");
    let want = format!("{}\n", path.join(".git").display());
    let commondir = admin.join("commondir");
    let common = repo.path().to_path_buf();
    let common_now = read(&commondir);
    let common_ok = Path::new(common_now.trim_end()) == common
        || common_now.trim_end() == common.to_string_lossy().trim_end_matches('/');
    if read(&gitdir) == want && common_ok {
        return Ok(false);
    }
    crate::util::write_atomic(&gitdir, want.as_bytes())?;
    if !common_ok {
        crate::util::write_atomic(&commondir, format!("{}\n", common.display()).as_bytes())?;
    }
    crate::util::write_atomic(
        &path.join(".git"),
        format!("gitdir: {}\n", admin.display()).as_bytes(),
    )?;
    Ok(true)
}

/// Whether `e` is a git call that ran out of its time (`patrol.push_timeout`): a remote
/// that hangs, not one that answered no. Trying again within the same pass only waits
/// as long again.
pub fn timed_out(e: &Error) -> bool {
    matches!(e, Error::Git { .. }) && e.to_string().contains("(patrol.push_timeout)")
}

/// Link (or copy) the packs (with their indexes) of `staging` (an object directory holding only
/// what [`verify_pushed`] passed) into the object store of `repo_dir`: what an agent
/// pushed becomes one pack on the host, not a file per object, and needs no lock (an
/// object nothing names yet changes nothing; the branch moves later). The pack file
/// goes first, its index last: git and libgit2 see a pack once its index is there.
pub fn install_packs(repo_dir: &Path, staging: &Path) -> Result<usize> {
    let host = Repository::open(repo_dir)?;
    let to = host.path().join("objects").join("pack");
    std::fs::create_dir_all(&to).ctx(|| format!("creating {}", to.display()))?;
    let from = staging.join("pack");
    let mut n = 0;
    let rd = std::fs::read_dir(&from).ctx(|| format!("reading {}", from.display()))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".idx") else {
            continue;
        };
        for ext in ["pack", "idx"] {
            let f = format!("{stem}.{ext}");
            if to.join(&f).exists() {
                continue; // the same name is the same content
            }
            // (Not named *.idx or *.pack until whole: git looks for packs by name.)
            let tmp = to.join(format!("tmp_{stem}_{ext}"));
            let _ = std::fs::remove_file(&tmp);
            if std::fs::hard_link(from.join(&f), &tmp).is_err() {
                std::fs::copy(from.join(&f), &tmp)
                    .ctx(|| format!("copying {f} into {}", to.display()))?;
            }
            std::fs::rename(&tmp, to.join(&f)).ctx(|| format!("installing {f}"))?;
        }
        n += 1;
    }
    Ok(n)
}

/// Fast-forward `branch` of the local repository at `path` (the user's own) to `commit`,
/// only if it is still `expected` (a lease), and read it back: git's own rule decides
/// whether a checked-out branch may move (`receive.denyCurrentBranch=updateInstead`:
/// only with a clean work tree and index, which it then updates). Asked per push, the
/// user's config unchanged; their hooks do not run (host git calls never run hooks).
/// The caller checked that `commit` descends from `expected`: never a force.
pub fn push_into_checkout(
    repo_dir: &Path,
    path: &str,
    commit: &str,
    branch: &str,
    expected: &str,
    timeout: Duration,
) -> Result<CasPush> {
    let pushed = git_cli_within(
        repo_dir,
        &[
            "push",
            "--quiet",
            "--receive-pack=git -c receive.denyCurrentBranch=updateInstead -c core.hooksPath=/dev/null receive-pack",
            &format!("--force-with-lease=refs/heads/{branch}:{expected}"),
            "--",
            path,
            &format!("{commit}:refs/heads/{branch}"),
        ],
        Some(timeout),
    );
    match remote_head(repo_dir, path, branch, timeout)? {
        Some(h) if h == commit => Ok(CasPush::Pushed),
        Some(h) if h != expected => Ok(CasPush::Moved(Some(h))),
        _ => pushed.map(|_| CasPush::Moved(None)),
    }
}

/// Delete `remote`'s `branch` only if it is still at `expected` (git's
/// `--force-with-lease`): a branch someone pushed to meanwhile is never deleted. Ok(true)
/// deleted (or already gone), Ok(false) kept because it moved.
pub fn delete_remote_branch_cas(
    repo_dir: &Path,
    remote: &str,
    branch: &str,
    expected: &str,
    timeout: Duration,
) -> Result<bool> {
    let pushed = git_cli_within(
        repo_dir,
        &[
            "push",
            "--quiet",
            &format!("--force-with-lease=refs/heads/{branch}:{expected}"),
            "--",
            remote,
            &format!(":refs/heads/{branch}"),
        ],
        Some(timeout),
    );
    match pushed {
        Ok(_) => Ok(true),
        Err(e) if timed_out(&e) => Err(e),
        Err(e) => match remote_head(repo_dir, remote, branch, timeout)? {
            None => Ok(true),
            Some(h) if h != expected => Ok(false),
            Some(_) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn tree_names_git_refuses_are_refused() {
        for ok in [&b"src"[..], b".gitignore", b"git", b".github", b"a.git"] {
            assert!(tree_name_ok(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b""[..],
            b".",
            b"..",
            b".git",
            b".GIT",
            b".Git. ",
            b".git..",
            b"a/b",
            b"a\0b",
        ] {
            assert!(!tree_name_ok(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    use super::*;

    fn commit_file(repo: &Repository, name: &str) -> git2::Oid {
        let dir = repo.workdir().unwrap();
        std::fs::write(dir.join(name), name).unwrap();
        let mut idx = repo.index().unwrap();
        idx.add_path(Path::new(name)).unwrap();
        idx.write().unwrap();
        let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &[])
            .unwrap()
    }

    #[test]
    fn uncommitted_lists_changes_without_opening_fifos_or_nested_repositories() {
        let t = tempfile::tempdir().unwrap();
        let repo = Repository::init(t.path().join("r")).unwrap();
        let head = commit_file(&repo, "a.txt");
        let wt = t.path().join("wt");
        std::fs::create_dir(&wt).unwrap();
        std::fs::write(wt.join("a.txt"), "a.txt").unwrap();
        std::fs::write(wt.join("new.txt"), "x").unwrap();
        let fifo = std::ffi::CString::new(wt.join("pipe").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        // A nested repository whose config would run a command if git read it.
        let nested = Repository::init(wt.join("sub")).unwrap();
        nested
            .config()
            .unwrap()
            .set_str("core.fsmonitor", "touch /tmp/gt-pwned-by-fsmonitor")
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (r, w) = (t.path().join("r"), wt.clone());
        std::thread::spawn(move || {
            let _ = tx.send(uncommitted(&r, &w, None, &head.to_string()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("uncommitted() hung on a FIFO")
            .unwrap();
        assert!(got.iter().any(|p| p == "new.txt"), "{got:?}");
        assert!(!Path::new("/tmp/gt-pwned-by-fsmonitor").exists());
    }
}
