//! The merge queue's review side: what a finished bead changed against its rig's
//! default branch (`gt diff`) and one merge request in full (`gt mq show`). Read-only:
//! host refs and objects only (the agent's work was imported at its hand-over).

use crate::error::{Error, Result};
use crate::state::merge_requests::MrState;
use crate::town::Town;
use serde::Serialize;

/// What a change holds against the merge base with its target.
#[derive(Debug, Serialize)]
pub struct Change {
    pub bead: String,
    pub rig: String,
    pub branch: String,
    pub commit: String,
    /// The default branch it is measured against, and their merge base.
    pub target: String,
    pub base: String,
    pub commits: Vec<CommitLine>,
    pub files: Vec<FileStat>,
    /// The unified diff (only when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CommitLine {
    pub id: String,
    pub author: String,
    pub subject: String,
}

#[derive(Debug, Serialize)]
pub struct FileStat {
    pub path: String,
    pub insertions: usize,
    pub deletions: usize,
}

/// A merge request with everything a reviewer asks first.
#[derive(Debug, Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub listed: super::Listed,
    pub bead_status: String,
    pub change: Change,
    /// What happened to it, oldest first (recorded, approved, picked, gate runs, …).
    pub history: Vec<HistoryLine>,
}

#[derive(Debug, Serialize)]
pub struct HistoryLine {
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub data: serde_json::Value,
}

/// `gt diff BEAD|MR`: the change against the merge base with the rig's default branch.
/// A bead without a merge request yet shows its branch as the host knows it.
pub fn diff(town: &Town, id: &str, with_patch: bool) -> Result<Change> {
    // A landed change is measured against the target it landed on, not today's.
    let mut landed_on = None;
    let (bead, rig, branch, commit) = match super::find(town, id) {
        Ok(mr) => {
            if mr.state == MrState::Merged {
                landed_on = mr.base.clone();
            }
            (mr.bead, mr.rig, mr.branch, mr.commit)
        }
        Err(e) => {
            let Some(b) =
                crate::state::beads::get(town.db.conn(), id).map_err(|e| town.db_err(e))?
            else {
                return Err(e);
            };
            let branch = b.branch.clone().ok_or_else(|| {
                Error::not_found(
                    format!("work of bead {id}"),
                    Some("it has not been slung yet: `gt sling BEAD`".into()),
                )
            })?;
            let repo = git2::Repository::open(town.repo_dir(&b.rig))?;
            let head = crate::git::branch_head(&repo, &branch)?
                .ok_or_else(|| Error::not_found(format!("branch {branch} of bead {id}"), None))?;
            (b.id, b.rig, branch, head)
        }
    };
    let target = crate::town::rig::get(town, &rig)?.default_branch;
    let repo = git2::Repository::open(town.repo_dir(&rig))?;
    let head = git2::Oid::from_str(&commit).map_err(|e| Error::git(e.message().to_string()))?;
    let target_head = match landed_on {
        Some(b) => Some(b),
        None => crate::git::branch_head(&repo, &target)?,
    }
    .and_then(|h| git2::Oid::from_str(&h).ok())
    .ok_or_else(|| Error::git(format!("rig {rig} has no branch {target}")))?;
    let base = repo.merge_base(head, target_head)?;
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    walk.hide(base)?;
    let mut commits = Vec::new();
    for c in walk {
        let c = repo.find_commit(c?)?;
        commits.push(CommitLine {
            id: c.id().to_string(),
            author: c.author().name().unwrap_or("?").to_string(),
            subject: c.summary().ok().flatten().unwrap_or("").to_string(),
        });
    }
    let old = repo.find_commit(base)?.tree()?;
    let new = repo.find_commit(head)?.tree()?;
    let d = repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
    let mut files = Vec::new();
    for (i, delta) in d.deltas().enumerate() {
        let path = delta
            .new_file()
            .path()
            .or(delta.old_file().path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (mut insertions, mut deletions) = (0, 0);
        if let Ok(Some(p)) = git2::Patch::from_diff(&d, i) {
            let (_, ins, del) = p.line_stats()?;
            (insertions, deletions) = (ins, del);
        }
        files.push(FileStat {
            path,
            insertions,
            deletions,
        });
    }
    let patch = if with_patch {
        let mut text = String::new();
        d.print(git2::DiffFormat::Patch, |_, _, line| {
            if matches!(line.origin(), '+' | '-' | ' ') {
                text.push(line.origin());
            }
            text.push_str(&String::from_utf8_lossy(line.content()));
            true
        })?;
        Some(text)
    } else {
        None
    };
    Ok(Change {
        bead,
        rig,
        branch,
        commit,
        target,
        base: base.to_string(),
        commits,
        files,
        patch,
    })
}

/// `gt mq show ID`: a merge request, why it waits, its bead's status, its change and
/// its history.
pub fn show(town: &Town, id: &str) -> Result<Shown> {
    let mr = super::find(town, id)?;
    let change = diff(town, &mr.id.to_string(), false)?;
    let conn = town.db.conn();
    let bead_status = crate::state::beads::get(conn, &mr.bead)
        .map_err(|e| town.db_err(e))?
        .map(|b| b.status)
        .unwrap_or_else(|| "gone".into());
    let history = crate::state::events::after(conn, 0, Some(&mr.bead))
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|e| {
            (e.kind.starts_with("mr.") || e.kind.starts_with("mq."))
                && e.data["mr"].as_i64() == Some(mr.id)
        })
        .map(|e| HistoryLine {
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            data: e.data,
        })
        .collect();
    let listed = super::list(town, Some(&mr.rig), &[], super::Listing::All)?
        .into_iter()
        .find(|l| l.mr.id == mr.id)
        .ok_or_else(|| Error::Other(format!("merge request {} vanished", mr.id)))?;
    Ok(Shown {
        listed,
        bead_status,
        change,
        history,
    })
}
