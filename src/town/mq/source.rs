//! Landing into the user's own repository. A rig added from a local git repository
//! without `--remote` has its landed target fast-forwarded into that repository (by
//! git's own rule for a checked-out branch, `receive.denyCurrentBranch=updateInstead`),
//! and the queue builds on commits a person made on that branch there.
//!
//! gt's clone stays the queue's truth: the landing itself never waits on the user's
//! repository. Delivery is a separate, retried step (each pass), never a force, never
//! a touch of a dirty work tree; what it cannot deliver it says once per cause, with the
//! command that takes the work. Only the host-written, landed target is ever pushed, to
//! the path and branch of the rig's own record.

use super::land::{Report, follow_rewind, short};
use crate::error::{Error, Result};
use crate::state::merge_requests::{self, MrState};
use crate::state::rigs::Rig;
use crate::town::Town;
use crate::town::mail::MAYOR;
use crate::util::now_ms;
use git2::{Oid, Repository};
use std::path::PathBuf;

/// The prefix of a merged request's reason while its work is not in the user's
/// repository.
pub const NOT_DELIVERED: &str = "not in your repository yet: ";

/// Where the host mirrors the source's target (fetched each pass).
const MIRROR: &str = "refs/gt/source";

/// The meta key that turns delivery off for a rig (`gt rig set R --land-into-source off`).
fn off_key(rig: &str) -> String {
    format!("rig.{rig}.land_into_source")
}

/// The meta key of the target head gt last saw in the source in step with its clone.
fn synced_key(rig: &str) -> String {
    format!("land.source.{rig}.synced")
}

fn meta(town: &Town, key: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    town.db
        .conn()
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(|e| town.db_err(e))
}

/// Whether a person turned delivery into the source off for `rig`.
pub fn opted_out(town: &Town, rig: &str) -> Result<bool> {
    Ok(meta(town, &off_key(rig))?.as_deref() == Some("off"))
}

/// Record `--land-into-source on|off` in the caller's transaction.
pub fn set_opt_tx(tx: &mut crate::state::Tx, rig: &str, on: bool) -> Result<()> {
    if on {
        tx.execute("DELETE FROM meta WHERE key = ?1", [off_key(rig)])
            .map_err(|e| tx.err(e))?;
    } else {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, 'off') ON CONFLICT(key) DO UPDATE SET value = 'off'",
            [off_key(rig)],
        )
        .map_err(|e| tx.err(e))?;
    }
    Ok(())
}

/// Where a rig's landed work goes.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LandsInto {
    /// Pushed to the rig's remote.
    Remote { url: String, branch: String },
    /// Fast-forwarded into the user's own repository (the rig's local source).
    Source { path: String, branch: String },
    /// Only the town's clone (`rigs/R/repo`): `why`.
    Clone { path: String, why: String },
}

impl LandsInto {
    /// In words, for `gt rig add` and `gt rig show`.
    pub fn describe(&self) -> String {
        match self {
            LandsInto::Remote { url, branch } => format!("the remote {url}, branch {branch}"),
            LandsInto::Source { path, branch } => {
                format!("your repository {path}, branch {branch}")
            }
            LandsInto::Clone { path, why } => format!("only the town's clone {path} ({why})"),
        }
    }
}

/// Where `rig`'s landed work goes.
pub fn lands_into(town: &Town, rig: &Rig) -> Result<LandsInto> {
    let branch = rig.default_branch.clone();
    if let Some(url) = &rig.remote {
        return Ok(LandsInto::Remote {
            url: url.clone(),
            branch,
        });
    }
    let clone = town.repo_dir(&rig.name).to_string_lossy().into_owned();
    if crate::git::is_url(&rig.source) {
        return Ok(LandsInto::Clone {
            path: clone,
            why: "its source is a URL and it has no remote".into(),
        });
    }
    if opted_out(town, &rig.name)? {
        return Ok(LandsInto::Clone {
            path: clone,
            why: format!(
                "--land-into-source off; `gt rig set {} --land-into-source on` delivers to {}",
                rig.name, rig.source
            ),
        });
    }
    Ok(LandsInto::Source {
        path: rig.source.clone(),
        branch,
    })
}

/// The source a rig delivers into, when it does.
fn delivers(town: &Town, rig: &Rig) -> Result<Option<PathBuf>> {
    Ok(match lands_into(town, rig)? {
        LandsInto::Source { path, .. } => Some(PathBuf::from(path)),
        _ => None,
    })
}

/// Why a delivery waits.
enum Cause {
    /// The source's branch is checked out with uncommitted changes, or git refused.
    Refused(String),
    /// The source's branch and gt's went separate ways.
    Diverged,
    /// The source cannot be read (gone, not a repository, no such branch).
    Unreadable(String),
}

/// One delivery pass for `rig`: bring gt's target up to commits the user made on their
/// branch, or fast-forward the user's branch to gt's landed target. Never fails the
/// landing: a problem is said (once per cause) and retried next pass.
pub fn sync(town: &mut Town, rig: &Rig, report: &mut Report) -> Result<()> {
    let Some(src) = delivers(town, rig)? else {
        return Ok(());
    };
    // A repository that did not answer within the push budget is not asked again before
    // its backoff ends (a hung disk must not stall every pass; the queue goes on).
    let key = backoff_key(&rig.name);
    let shown = src.display().to_string();
    if let Some(b) = crate::town::done::push_backoff(town, &key)?.filter(|b| now_ms() < b.until) {
        // What landed meanwhile says where it is (the mayor was told already).
        tell(town, rig, &src, Cause::Unreadable(b.error.clone()))?;
        report
            .waiting
            .push(format!("rig {}: {}", rig.name, b.why(&shown)));
        return Ok(());
    }
    match sync_inner(town, rig, &src) {
        Ok(None) => crate::town::done::clear_push_backoff(town, &key),
        Ok(Some(cause)) => {
            crate::town::done::clear_push_backoff(town, &key)?;
            let why = tell(town, rig, &src, cause)?;
            report.waiting.push(format!("rig {}: {why}", rig.name));
            Ok(())
        }
        Err(e @ (Error::LeaseLost { .. } | Error::Interrupted { .. })) => Err(e),
        Err(e) => {
            if crate::git::timed_out(&e) {
                crate::town::done::record_push_failure(town, &key, &shown, &e)?;
            }
            let why = tell(town, rig, &src, Cause::Unreadable(e.to_string()))?;
            report.waiting.push(format!("rig {}: {why}", rig.name));
            Ok(())
        }
    }
}

/// The push backoff of `rig`'s delivery into its source (apart from its remote's).
fn backoff_key(rig: &str) -> String {
    format!("{rig}.source")
}

fn sync_inner(town: &mut Town, rig: &Rig, src: &std::path::Path) -> Result<Option<Cause>> {
    let target = rig.default_branch.clone();
    let repo_dir = town.repo_dir(&rig.name);
    let repo = Repository::open(&repo_dir)?;
    let Some(local) = crate::git::branch_head(&repo, &target)? else {
        return Ok(None);
    };
    if !src.is_dir() {
        return Ok(Some(Cause::Unreadable(format!(
            "{} does not exist any more",
            src.display()
        ))));
    }
    town.db.renew_lease()?;
    let within = timeout(town);
    let src_s = src.to_string_lossy().into_owned();
    let Some(fetched) = crate::git::fetch_branch(
        &repo_dir,
        &src_s,
        &target,
        &format!("{MIRROR}/{target}"),
        within,
    )?
    else {
        return Ok(Some(Cause::Unreadable(format!(
            "{} has no branch {target}",
            src.display()
        ))));
    };
    let (ours, theirs) = (Oid::from_str(&local)?, Oid::from_str(&fetched)?);
    if ours == theirs {
        return in_step(town, rig, &local, false).map(|_| None);
    }
    if repo.graph_descendant_of(theirs, ours)? {
        // The user committed on their branch: their commits are the truth, the queue
        // builds on them.
        repo.reference_matching(
            &format!("refs/heads/{target}"),
            theirs,
            true,
            ours,
            "gt: target follows your repository",
        )?;
        crate::interrupt::step("mq.source.followed")?;
        town.db.write(|tx| {
            tx.event(
                "mq.source_followed",
                &rig.name,
                serde_json::json!({ "target": target, "from": local, "to": fetched }),
            )
        })?;
        return in_step(town, rig, &fetched, true).map(|_| None);
    }
    if !repo.graph_descendant_of(ours, theirs)? {
        return Ok(Some(Cause::Diverged));
    }
    // gt's target holds the source's and more: landed work to deliver, unless the user
    // moved their branch back from where gt last left it (a rewind: followed, never
    // pushed again).
    if let Some(synced) = meta(town, &synced_key(&rig.name))?
        && let Ok(s) = Oid::from_str(&synced)
        && s != theirs
        && repo.find_commit(s).is_ok()
        && repo.graph_descendant_of(s, theirs)?
    {
        follow_rewind(town, rig, &repo, &target, &src_s, ours, theirs)?;
        return in_step(town, rig, &fetched, true).map(|_| None);
    }
    crate::interrupt::step("mq.source.before_push")?;
    if let Some(lock) = held_ref_lock(src, &target) {
        // git's updateInstead updates the work tree before it takes the ref's lock: a
        // push now would leave the user's files at gt's commit and their branch not.
        return Ok(Some(Cause::Refused(format!(
            "{} is held: git is running there; gt waits for it",
            lock.display()
        ))));
    }
    match crate::git::push_into_checkout(&repo_dir, &src_s, &local, &target, &fetched, within) {
        Ok(crate::git::CasPush::Pushed) => {
            crate::interrupt::step("mq.source.after_push")?;
            town.db.write(|tx| {
                tx.event(
                    "mq.delivered",
                    &rig.name,
                    serde_json::json!({ "source": src_s, "target": target, "from": fetched, "to": local }),
                )
            })?;
            in_step(town, rig, &local, true).map(|_| None)
        }
        // The user moved their branch meanwhile: looked at again next pass.
        Ok(crate::git::CasPush::Moved(_)) => Ok(None),
        Err(e) if crate::git::timed_out(&e) => Err(e),
        Err(e) => {
            let said = e.to_string();
            let detail = said
                .lines()
                .find(|l| l.contains("[remote rejected]") || l.contains("[rejected]"))
                .map(|l| l.trim().to_string())
                .unwrap_or_else(|| said.lines().last().unwrap_or("").trim().to_string());
            Ok(Some(Cause::Refused(detail.chars().take(300).collect())))
        }
    }
}

/// A lock file of the user's git on `branch`'s ref (or on the packed refs), if one is
/// held in the repository at `src`.
fn held_ref_lock(src: &std::path::Path, branch: &str) -> Option<PathBuf> {
    let repo = Repository::open(src).ok()?;
    let common = repo.commondir().to_path_buf();
    [
        common.join(format!("refs/heads/{branch}.lock")),
        common.join("packed-refs.lock"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// The source and gt's clone hold the same target `head`: what said the work was
/// missing there is lifted, and `head` recorded when gt `moved` either side (a quiet
/// pass writes nothing).
fn in_step(town: &mut Town, rig: &Rig, head: &str, moved: bool) -> Result<()> {
    let key = synced_key(&rig.name);
    let known = meta(town, &key)?;
    let stale: i64 = town
        .db
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM merge_requests WHERE rig = ?1 AND state = 'merged' AND reason LIKE ?2",
            rusqlite::params![rig.name, format!("{NOT_DELIVERED}%")],
            |r| r.get(0),
        )
        .map_err(|e| town.db_err(e))?;
    if stale == 0 && (!moved || known.as_deref() == Some(head)) {
        return Ok(());
    }
    town.db.write(|tx| {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            rusqlite::params![key, head],
        )
        .map_err(|e| tx.err(e))?;
        tx.execute(
            "UPDATE merge_requests SET reason = NULL WHERE rig = ?1 AND state = 'merged' AND reason LIKE ?2",
            rusqlite::params![rig.name, format!("{NOT_DELIVERED}%")],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            "mq.source_in_step",
            &rig.name,
            serde_json::json!({ "target": rig.default_branch, "head": head }),
        )
    })
}

/// Say once per cause (and per state of the user's branch) why the landed work is not
/// in the source, and the command that takes it; the merged requests it concerns say
/// it too. Returns the why.
fn tell(town: &mut Town, rig: &Rig, src: &std::path::Path, cause: Cause) -> Result<String> {
    let target = rig.default_branch.clone();
    let clone = town.repo_dir(&rig.name);
    let (key, what, command) = match &cause {
        Cause::Refused(d) => (
            if d.contains("Working directory has") {
                "dirty"
            } else {
                "refused"
            },
            if d.contains("Working directory has") {
                format!(
                    "{target} is checked out in {} with uncommitted changes, which gt never touches ({d})",
                    src.display()
                )
            } else {
                format!("git refused to fast-forward {target} there ({d})")
            },
            format!(
                "git -C {} pull --ff-only {} {}",
                sh_word(&src.to_string_lossy()),
                sh_word(&clone.to_string_lossy()),
                sh_word(&target)
            ),
        ),
        Cause::Diverged => (
            "diverged",
            format!(
                "{target} there and gt's {target} went separate ways (commits on both sides); gt never forces"
            ),
            format!(
                "git -C {} pull --no-rebase {} {}",
                sh_word(&src.to_string_lossy()),
                sh_word(&clone.to_string_lossy()),
                sh_word(&target)
            ),
        ),
        Cause::Unreadable(d) => (
            "unreadable",
            format!(
                "cannot read it: {}",
                d.lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
            format!(
                "git -C {} pull --ff-only {} {}",
                sh_word(&src.to_string_lossy()),
                sh_word(&clone.to_string_lossy()),
                sh_word(&target)
            ),
        ),
    };
    let why = format!(
        "{NOT_DELIVERED}{what}; landed in gt's clone only. Take it with `{command}`; gt tries again every pass"
    );
    let repo = Repository::open(&clone)?;
    let local = crate::git::branch_head(&repo, &target)?
        .map(|h| Oid::from_str(&h))
        .transpose()?;
    let theirs = repo
        .refname_to_id(&format!("{MIRROR}/{target}"))
        .ok()
        .filter(|_| !matches!(cause, Cause::Unreadable(_)));
    // The merged requests whose landing is not in the source.
    let missing: std::collections::HashSet<Oid> = match local {
        Some(l) => {
            let mut walk = repo.revwalk()?;
            walk.push(l)?;
            if let Some(t) = theirs {
                walk.hide(t)?;
            }
            walk.take(5000).filter_map(|c| c.ok()).collect()
        }
        None => Default::default(),
    };
    let concerned: Vec<i64> = merge_requests::in_state(town.db.conn(), &rig.name, MrState::Merged)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|m| {
            m.reason.as_deref() != Some(why.as_str())
                && m.merged_commit
                    .as_deref()
                    .and_then(|c| Oid::from_str(c).ok())
                    .is_some_and(|c| missing.contains(&c))
        })
        .map(|m| m.id)
        .collect();
    let state = theirs
        .map(|t| short(&t.to_string()).to_string())
        .unwrap_or_else(|| "none".into());
    let mail = crate::state::mail::Mail::new(
        format!("land-source-{}-{key}-{state}", rig.name),
        "patrol",
        MAYOR,
        format!(
            "rig {}: landed work is not in {} yet",
            rig.name,
            src.display()
        ),
        format!(
            "Rig {} lands its work into your repository {}, branch {target}. The latest landing ({}) \
             is in gt's clone {} only: {what}.\n\nNothing of yours was changed. Take the work with\n\n    {command}\n\n\
             or clean up and gt delivers it in its next pass by itself. \
             (`gt rig set {} --land-into-source off` stops delivering.)",
            rig.name,
            src.display(),
            local
                .map(|l| short(&l.to_string()).to_string())
                .unwrap_or_default(),
            clone.display(),
            rig.name
        ),
        now_ms(),
    );
    let id = mail.id.clone();
    town.db.write(|tx| {
        for mr in &concerned {
            tx.execute(
                "UPDATE merge_requests SET reason = ?2 WHERE id = ?1 AND state = 'merged'",
                rusqlite::params![mr, why],
            )
            .map_err(|e| tx.err(e))?;
        }
        if crate::town::mail::post(tx, &mail)? || !concerned.is_empty() {
            tx.event(
                "mq.not_delivered",
                &rig.name,
                serde_json::json!({ "cause": key, "why": why, "mail": id, "mrs": concerned }),
            )?;
        }
        Ok(())
    })?;
    Ok(why)
}

/// `s` as one word for sh, as it is when nothing in it is special to a shell (a plain
/// path reads as itself), else in single quotes (`'` written as `'\''`): the mailed
/// command is pasted as it is, and a path or branch name must never split or run.
fn sh_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn timeout(town: &Town) -> std::time::Duration {
    town.config
        .patrol
        .push_timeout
        .min(town.config.patrol.lease / 2)
}
