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
fn admin_dir(repo: &Repository, worktree: &Path) -> PathBuf {
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

fn worktree_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wt".into())
}

/// Remove the lock files an agent killed mid-git (OOM, `docker kill`, an engine restart)
/// leaves behind in its worktree: `index.lock`, `HEAD.lock`, … in the worktree's own git
/// dir, and the lock of its branch. Git refuses every later commit while they exist, so
/// a retry would fail the same way until `max_attempts`. Only call this when no process
/// can be using the worktree (its agent has no live container). Returns what was removed.
pub fn clear_stale_locks(repo: &Repository, worktree: &Path, branch: &str) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let mut candidates: Vec<PathBuf> = match std::fs::read_dir(admin_dir(repo, worktree)) {
        Ok(dir) => dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "lock"))
            .collect(),
        Err(_) => Vec::new(),
    };
    candidates.push(repo.path().join(format!("refs/heads/{branch}.lock")));
    for path in candidates {
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
        }
    }
    Ok(removed)
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

pub fn unsaved(worktree: &Path, base: &str) -> Result<Unsaved> {
    let repo = match Repository::open(worktree) {
        Ok(r) => r,
        Err(_) => return Ok(Unsaved::default()),
    };
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    let uncommitted = repo
        .statuses(Some(&mut opts))?
        .iter()
        .filter_map(|s| s.path().ok().map(String::from))
        .collect();
    let mut unpushed_commits = 0;
    if let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) {
        let mut walk = repo.revwalk()?;
        walk.push(head.id())?;
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

/// The commit a branch points at.
pub fn branch_head(repo: &Repository, branch: &str) -> Result<Option<String>> {
    Ok(repo
        .find_branch(branch, BranchType::Local)
        .ok()
        .and_then(|b| b.get().target())
        .map(|o| o.to_string()))
}

/// Commit everything uncommitted in `worktree` (new, changed and deleted files) on its
/// branch. Returns the new commit, or None when the tree was clean.
pub fn commit_all(
    worktree: &Path,
    name: &str,
    email: &str,
    message: &str,
) -> Result<Option<String>> {
    let repo = Repository::open(worktree)?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    if repo.statuses(Some(&mut opts))?.is_empty() {
        return Ok(None);
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.update_all(["*"], None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now(name, email)?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let oid = repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
    Ok(Some(oid.to_string()))
}

/// The commit `remote` has at `branch`, asked with the user's git (credentials apply).
pub fn remote_head(
    repo_dir: &Path,
    remote: &str,
    branch: &str,
    timeout: Duration,
) -> Result<Option<String>> {
    let out = git_cli_within(
        repo_dir,
        &["ls-remote", "--", remote, &format!("refs/heads/{branch}")],
        Some(timeout),
    )?;
    Ok(out.split_whitespace().next().map(String::from))
}

/// Every branch `remote` has, with its commit: one `git ls-remote --heads`.
pub fn remote_branches(
    repo_dir: &Path,
    remote: &str,
) -> Result<std::collections::HashMap<String, String>> {
    let out = git_cli(repo_dir, &["ls-remote", "--heads", "--", remote])?;
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

/// Push `commit` to `remote` as `branch` with the user's git.
pub fn push(
    repo_dir: &Path,
    remote: &str,
    commit: &str,
    branch: &str,
    timeout: Duration,
) -> Result<()> {
    git_cli_within(
        repo_dir,
        &[
            "push",
            "--quiet",
            "--",
            remote,
            &format!("{commit}:refs/heads/{branch}"),
        ],
        Some(timeout),
    )
    .map(|_| ())
}

fn git_cli(dir: &Path, args: &[&str]) -> Result<String> {
    git_cli_within(dir, args, None)
}

/// Run the user's `git` with `args`; with a deadline, a call still running then is
/// killed with everything it started (its own process group: ssh, hooks of a local
/// remote) and reported as timed out, so one hanging remote stalls nothing else.
fn git_cli_within(dir: &Path, args: &[&str], timeout: Option<Duration>) -> Result<String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
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
                "`git {}` timed out after {}s (patrol.push_timeout); it is tried again on the next pass",
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
/// Released when the returned file is dropped.
pub fn lock(repo_dir: &Path) -> Result<std::fs::File> {
    let path = repo_dir.join(".git").join("gt-worktrees.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    f.lock().ctx(|| format!("locking {}", path.display()))?;
    Ok(f)
}
