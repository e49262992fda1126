//! The done saga: `verified → pushed → recorded → closed → notified → released`.
//! Each step verifies before acting, is idempotent, and records its checkpoint in the
//! same transaction as its database effect, so a crash anywhere resumes at the first
//! step without a checkpoint (patrol resumes every `finishing` agent).

use super::{Town, mail::MAYOR};
use crate::agent::request::DoneStatus;
use crate::error::{Error, Result};
use crate::runtime::{RunState, Runtime};
use crate::state::{agents, checkpoints, dispatches, mail::Mail, merge_requests, rigs};
use crate::util::now_ms;
use std::time::Duration;

/// How long an agent's container may take to end on its own after `gt done`.
const DONE_GRACE: Duration = Duration::from_secs(5);

/// Push attempts within one saga run, and the waits between them.
const PUSH_BACKOFF: &[Duration] = &[
    Duration::from_millis(0),
    Duration::from_millis(300),
    Duration::from_millis(1200),
];

#[derive(Debug, serde::Serialize, PartialEq)]
pub enum SagaOutcome {
    Finished {
        bead: String,
        commit: String,
    },
    /// The agent's work was refused (its import): the bead is escalated, its worktree
    /// kept for a human, the dispatch over.
    Refused {
        bead: String,
        why: String,
    },
    /// Waiting for a later pass (a push that keeps failing, say).
    Pending {
        bead: String,
        step: &'static str,
        why: String,
    },
}

/// Run (or resume) the done saga of a `finishing` agent.
pub fn resume(town: &mut Town, rt: &dyn Runtime, agent_id: &str) -> Result<SagaOutcome> {
    let conn = town.db.conn();
    let a = agents::get(conn, agent_id)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| Error::not_found(format!("polecat {agent_id}"), None))?;
    let d = a
        .dispatch
        .and_then(|id| dispatches::get(conn, id).ok().flatten())
        .ok_or_else(|| Error::Other(format!("{agent_id} is finishing without a dispatch")))?;
    let rig = rigs::get(conn, &a.rig)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| Error::not_found(format!("rig {}", a.rig), None))?;
    let requested = checkpoints::step(conn, d.id, "requested")
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| Error::Other(format!("{agent_id} is finishing without a done request")))?;
    let req: serde_json::Value =
        serde_json::from_str(requested.note.as_deref().unwrap_or("{}")).unwrap_or_default();
    let status: DoneStatus =
        serde_json::from_value(req["status"].clone()).unwrap_or(DoneStatus::Completed);
    let note = req["note"].as_str().unwrap_or("").to_string();
    let bead = d.bead.clone();
    let has = |town: &Town, step: &str| {
        checkpoints::step(town.db.conn(), d.id, step).map_err(|e| town.db_err(e))
    };

    // verified: the branch head, with uncommitted work committed, never dropped.
    let head = match has(town, "verified")? {
        Some(cp) => cp.head.unwrap_or_default(),
        None => {
            fail::fail_point!("saga.verified.before");
            // The agent said done: nothing of it may write while its work is taken over.
            // A real agent CLI ends its run on its own right after `gt done` (one more
            // model turn, then its usage report): it gets `DONE_GRACE` for that. One still
            // running then (it lingers) is stopped (SIGTERM, then SIGKILL after 10 s),
            // its output kept first.
            let name = super::sling::container_name(&town.id, &a.rig, &a.name);
            let running = |rt: &dyn Runtime| -> Result<bool> {
                Ok(rt
                    .inspect(&name)?
                    .is_some_and(|c| c.state == RunState::Running))
            };
            let deadline = std::time::Instant::now() + DONE_GRACE;
            while running(rt)? && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if running(rt)? {
                // Stopped, then read: what it prints while stopping is kept too.
                super::transcript::stop_and_keep(
                    town,
                    rt,
                    &name,
                    &a.rig,
                    &bead,
                    d.id,
                    Duration::from_secs(10),
                )?;
                // (A runtime that cannot stop without removing stops it here.)
                rt.remove(&name, Duration::from_secs(10))?;
            } else {
                super::transcript::keep(town, rt, &name, &a.rig, &bead, d.id);
            }
            // `gt done` committed the agent's leftovers inside its container; the host
            // imports its commits (bounded, by id) and moves the branch forward to them.
            // Under the rig's git lock: a push `gt serve` is taking lands before or not
            // at all.
            // Exactly the head the done named: what the agent commits after it (it may
            // linger) is its leftovers, never landed.
            let lock = crate::git::lock(&town.repo_dir(&a.rig))?;
            let named = requested.head.as_deref();
            let head = match super::workspace::import_named(town, &a.rig, &a.name, &d.branch, named)
            {
                Ok(head) => head,
                // The agent's work itself is refused: the same on every try, so final
                // for this dispatch (never retried, nor paid for, every pass).
                Err(e) if super::workspace::import_refused(&e) => {
                    drop(lock);
                    return refuse_done(town, rt, &a, d.id, &bead, &name, &e);
                }
                Err(e) => return Err(e),
            };
            step_tx(town, d.id, &bead, "verified", Some(&head), None, |_| Ok(()))?;
            drop(lock);
            fail::fail_point!("saga.verified.after");
            head
        }
    };

    // pushed: to the rig's remote, unless it already has this commit.
    if has(town, "pushed")?.is_none() {
        fail::fail_point!("saga.pushed.before");
        let mut pushed_to = None;
        if let Some(remote) = &rig.remote {
            // A remote that keeps failing is not asked again before its backoff is over:
            // a hung one would cost every pass its timeout, for every saga of the rig.
            if let Some(b) = push_backoff(town, &a.rig)?
                && now_ms() < b.until
            {
                return Ok(SagaOutcome::Pending {
                    bead,
                    step: "pushed",
                    why: b.why(remote),
                });
            }
            match push_with_retry(town, remote, &head, &d.branch, &a.rig) {
                Ok(()) => clear_push_backoff(town, &a.rig)?,
                Err(e) => {
                    // A remote that does not answer is the rig's problem: all its sagas
                    // back off. One that answers no (a rejected branch) fails fast, and
                    // only this saga; it is tried again next pass.
                    let why = if crate::git::timed_out(&e) {
                        record_push_failure(town, &a.rig, remote, &e)?.why(remote)
                    } else {
                        e.to_string()
                    };
                    escalate_push(town, d.id, &bead, &a.id, remote, &e)?;
                    return Ok(SagaOutcome::Pending {
                        bead,
                        step: "pushed",
                        why,
                    });
                }
            }
            pushed_to = Some(remote.clone());
        }
        let note = pushed_to.clone().unwrap_or_else(|| "no remote".into());
        step_tx(
            town,
            d.id,
            &bead,
            "pushed",
            Some(&head),
            Some(&note),
            |_| Ok(()),
        )?;
        fail::fail_point!("saga.pushed.after");
    }

    // recorded: one merge request per (bead, commit), waiting for review or its turn
    // to land per the rig's policy (older open ones of the bead are superseded).
    if has(town, "recorded")?.is_none() {
        let remote = rig.remote.clone();
        // A head already on the target is no change: its own outcome, never a landing.
        let (state, no_change) =
            super::mq::recorded_state(town, &rig, &head, status.bead_status() == "done")?;
        step_tx(town, d.id, &bead, "recorded", Some(&head), None, |tx| {
            let new = merge_requests::NewMr {
                bead: &bead,
                rig: &a.rig,
                branch: &d.branch,
                commit: &head,
                pushed_to: remote.as_deref(),
                target: &rig.default_branch,
                state,
            };
            if let Some(id) = merge_requests::insert(tx, &new, now_ms()).map_err(|e| tx.err(e))? {
                tx.event(
                    "mr.recorded",
                    &bead,
                    serde_json::json!({ "mr": id, "branch": d.branch, "commit": head, "state": state.as_str() }),
                )?;
                if let Some(why) = &no_change {
                    super::mq::record_no_change(tx, id, &bead, &a.id, why)?;
                }
            }
            Ok(())
        })?;
    }

    // closed: the bead's status (and convoy progress, in the same transaction).
    if has(town, "closed")?.is_none() {
        step_tx(town, d.id, &bead, "closed", Some(&head), None, |tx| {
            let n = tx
                .execute(
                    "UPDATE beads SET status = ?2, queued_at = NULL, updated_at = ?3, version = version + 1
                     WHERE id = ?1 AND status IN ('hooked','in_progress')",
                    rusqlite::params![bead, status.bead_status(), now_ms()],
                )
                .map_err(|e| tx.err(e))?;
            if n == 1 {
                tx.event(
                    "bead.finished",
                    &bead,
                    serde_json::json!({ "status": status.bead_status(), "commit": head }),
                )?;
                super::convoy::on_bead_changed(tx, &bead)?;
            }
            Ok(())
        })?;
    }

    // notified: one mail to the mayor, keyed by the dispatch.
    if has(town, "notified")?.is_none() {
        let m = Mail::new(
            format!("done-{}", d.id),
            a.id.clone(),
            MAYOR,
            format!("{bead} {} by {}", status.bead_status(), a.id),
            format!("branch {}\ncommit {head}\n\n{note}", d.branch),
            now_ms(),
        );
        step_tx(town, d.id, &bead, "notified", None, None, |tx| {
            super::mail::post(tx, &m).map(|_| ())
        })?;
    }

    // released: container gone, worktree gone when clean and recorded, agent idle.
    if has(town, "released")?.is_none() {
        fail::fail_point!("saga.released.before");
        let name = super::sling::container_name(&town.id, &a.rig, &a.name);
        super::transcript::stop_and_keep(
            town,
            rt,
            &name,
            &a.rig,
            &bead,
            d.id,
            Duration::from_secs(5),
        )?;
        rt.remove(&name, Duration::from_secs(5))?;
        super::secret::remove_secrets(town, &a.rig, &a.name)?;
        fail::fail_point!("saga.container_removed.after");
        let kept_worktree = retire_worktree(town, &a, Some(&head))?;
        step_tx(town, d.id, &bead, "released", Some(&head), None, |tx| {
            let now = now_ms();
            dispatches::end(tx, d.id, now, None, false, "done").map_err(|e| tx.err(e))?;
            agents::release(tx, &a.id, a.generation, kept_worktree, now).map_err(|e| tx.err(e))?;
            tx.event(
                "agent.released",
                &a.id,
                serde_json::json!({ "bead": bead, "worktree_kept": kept_worktree }),
            )
        })?;
    }
    Ok(SagaOutcome::Finished { bead, commit: head })
}

/// A done whose work the host refuses to import (the agent's doing: over the import
/// limits, objects missing, a head that does not descend from its branch): final for
/// the dispatch. The container and secrets go; in one transaction the refusal is
/// recorded (a `refused` checkpoint with the reason), the dispatch ends, the bead is
/// escalated, the agent released with its worktree (and private git state) kept for a
/// human, and the mayor gets one mail. Nothing of the refused work is taken.
fn refuse_done(
    town: &mut Town,
    rt: &dyn Runtime,
    a: &agents::Agent,
    dispatch: i64,
    bead: &str,
    container: &str,
    e: &Error,
) -> Result<SagaOutcome> {
    let why = e.to_string();
    rt.remove(container, Duration::from_secs(5))?;
    super::secret::remove_secrets(town, &a.rig, &a.name)?;
    let m = Mail::new(
        format!("done-refused-{dispatch}"),
        "patrol",
        MAYOR,
        format!("[escalation] the work of {bead} by {} was refused", a.id),
        format!(
            "{why}\n\nNothing of it was imported. The bead is escalated; the worktree of {} is kept \
             for a human (`gt polecat nuke {}` removes it).",
            a.id, a.id
        ),
        now_ms(),
    );
    town.db.write(|tx| {
        let now = now_ms();
        if !checkpoints::insert(tx, dispatch, bead, "refused", Some(&why), None, now)
            .map_err(|e| tx.err(e))?
        {
            return Ok(()); // another process refused it already
        }
        dispatches::end(tx, dispatch, now, None, false, "done refused").map_err(|e| tx.err(e))?;
        agents::release(tx, &a.id, a.generation, true, now).map_err(|e| tx.err(e))?;
        let n = tx
            .execute(
                "UPDATE beads SET status = 'escalated', queued_at = NULL, updated_at = ?2, version = version + 1
                 WHERE id = ?1 AND status IN ('hooked','in_progress')",
                rusqlite::params![bead, now],
            )
            .map_err(|e| tx.err(e))?;
        super::mail::post(tx, &m)?;
        tx.event(
            "done.refused",
            bead,
            serde_json::json!({ "dispatch": dispatch, "agent": a.id, "error": why }),
        )?;
        if n == 1 {
            super::convoy::on_bead_changed(tx, bead)?;
        }
        Ok(())
    })?;
    Ok(SagaOutcome::Refused {
        bead: bead.to_string(),
        why,
    })
}

/// One saga step's transaction: the checkpoint (unique per dispatch and step) and the
/// effect together; a step another process already recorded is not applied again.
fn step_tx(
    town: &mut Town,
    dispatch: i64,
    bead: &str,
    step: &str,
    head: Option<&str>,
    note: Option<&str>,
    effect: impl FnOnce(&mut crate::state::Tx) -> Result<()>,
) -> Result<()> {
    town.db.write(|tx| {
        if !checkpoints::insert(tx, dispatch, bead, step, note, head, now_ms())
            .map_err(|e| tx.err(e))?
        {
            return Ok(());
        }
        effect(tx)?;
        tx.event(
            &format!("saga.{step}"),
            bead,
            serde_json::json!({ "dispatch": dispatch, "head": head }),
        )
    })
}

fn push_with_retry(
    town: &mut Town,
    remote: &str,
    head: &str,
    branch: &str,
    rig: &str,
) -> Result<()> {
    let repo_dir = town.repo_dir(rig);
    let timeout = town
        .config
        .patrol
        .push_timeout
        .min(town.config.patrol.lease / 2);
    let mut last = None;
    for wait in PUSH_BACKOFF {
        std::thread::sleep(*wait);
        // Each network call is bounded by push_timeout, shorter than the lease: renewing
        // the lease first means no other patrol takes over (and pushes the same branch in
        // parallel) while this one waits on the remote.
        town.db.renew_lease()?;
        match crate::git::remote_head(&repo_dir, remote, branch, timeout) {
            Ok(Some(h)) if h == head => return Ok(()), // the agent (or an earlier run) pushed it
            // A remote that does not answer within its time is not asked again now.
            Err(e) if crate::git::timed_out(&e) => return Err(e),
            _ => {}
        }
        town.db.renew_lease()?;
        // Work sent back by the merge queue may have been rebased onto its target: its
        // branch on the remote is a copy of the agent's, replaced (the old head stays
        // reachable on the host under refs/gt/returned/).
        let force = super::mq::land::rebase_marker(town, rig, branch).exists();
        match crate::git::push(&repo_dir, remote, head, branch, force, timeout) {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!("push of {branch} to {remote} failed: {e}");
                if crate::git::timed_out(&e) {
                    return Err(e); // trying again now would only wait as long again
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::git("push failed")))
}

/// The longest wait between two tries of a remote that keeps failing.
const MAX_PUSH_BACKOFF_MS: i64 = 10 * 60 * 1000;

/// A rig whose remote keeps not answering (pushes timed out): how often in a row, why
/// the last time, and when its remote is tried again (a `meta` row,
/// `push_backoff.<rig>`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PushBackoff {
    pub failures: u32,
    /// Epoch ms: no push of the rig's sagas before then.
    pub until: i64,
    pub error: String,
}

impl PushBackoff {
    /// Why a saga waits, as `gt patrol` and `gt bead show` tell it.
    pub fn why(&self, remote: &str) -> String {
        format!(
            "pushing to {remote} failed {} time(s) in a row, the last: {}; next try after {}",
            self.failures,
            self.error,
            crate::util::format_time(self.until)
        )
    }
}

fn backoff_key(rig: &str) -> String {
    format!("push_backoff.{rig}")
}

/// The rig's push backoff, if its remote failed last time.
pub fn push_backoff(town: &Town, rig: &str) -> Result<Option<PushBackoff>> {
    use rusqlite::OptionalExtension;
    let v: Option<String> = town
        .db
        .conn()
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [backoff_key(rig)],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| town.db_err(e))?;
    Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
}

/// One more failure in a row: the next try waits `push_timeout` × 2^(failures − 1), at
/// most ten minutes.
pub fn record_push_failure(
    town: &mut Town,
    rig: &str,
    remote: &str,
    e: &Error,
) -> Result<PushBackoff> {
    let failures = push_backoff(town, rig)?.map_or(0, |b| b.failures) + 1;
    let base = crate::util::millis(town.config.patrol.push_timeout).max(1000);
    let wait = base
        .saturating_mul(1i64 << (failures - 1).min(20))
        .min(MAX_PUSH_BACKOFF_MS);
    let error = e.to_string();
    let b = PushBackoff {
        failures,
        until: now_ms() + wait,
        error: error
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect(),
    };
    let value = serde_json::to_string(&b).map_err(|e| Error::Other(e.to_string()))?;
    town.db.write(|tx| {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            [backoff_key(rig), value.clone()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            "push.backed_off",
            rig,
            serde_json::json!({ "remote": remote, "failures": b.failures, "until": b.until, "error": error }),
        )
    })?;
    Ok(b)
}

/// The rig's remote took a push: its backoff (if any) ends.
pub fn clear_push_backoff(town: &mut Town, rig: &str) -> Result<()> {
    if push_backoff(town, rig)?.is_none() {
        return Ok(());
    }
    town.db.write(|tx| {
        tx.execute("DELETE FROM meta WHERE key = ?1", [backoff_key(rig)])
            .map_err(|e| tx.err(e))?;
        tx.event("push.recovered", rig, serde_json::json!({}))
    })
}

/// A push that keeps failing: one escalation per dispatch, however many passes retry.
fn escalate_push(
    town: &mut Town,
    dispatch: i64,
    bead: &str,
    agent: &str,
    remote: &str,
    e: &Error,
) -> Result<()> {
    let m = Mail::new(
        format!("push-failed-{dispatch}"),
        "patrol",
        MAYOR,
        format!("[escalation] cannot push {bead} to {remote}"),
        format!(
            "{agent} finished {bead}, but pushing its branch keeps failing:\n{e}\n\nThe saga resumes on every patrol pass."
        ),
        now_ms(),
    );
    town.db.write(|tx| {
        super::mail::post(tx, &m)?;
        tx.event(
            "saga.push_failed",
            bead,
            serde_json::json!({ "remote": remote, "error": e.to_string() }),
        )
    })
}

/// Take an agent's worktree away without losing anything: its commits are imported
/// onto its branch first. Kept (returns true) when it holds uncommitted work (or that
/// cannot be told): then a human decides. The agent's container is gone by now.
pub fn retire_worktree(town: &Town, a: &agents::Agent, recorded: Option<&str>) -> Result<bool> {
    let Some(wt) = existing_worktree(town, a) else {
        super::workspace::remove_private(town, &a.rig, &a.name)?;
        return Ok(false);
    };
    let wt = wt.as_path();
    let Some(branch) = a.branch.as_deref() else {
        return Ok(true);
    };
    // A finished saga's head (`recorded`) is the branch's already: what the agent
    // committed after its done is kept in its worktree, never imported.
    let head = super::workspace::import_named(town, &a.rig, &a.name, branch, recorded)?;
    match super::workspace::uncommitted(town, &a.rig, &a.name, wt, &head) {
        Some(paths) if paths.is_empty() => {}
        Some(paths) => {
            tracing::warn!(
                "kept the worktree {} of {}: {} uncommitted change(s)",
                wt.display(),
                a.id,
                paths.len()
            );
            return Ok(true);
        }
        None => return Ok(true),
    }
    let _lock = crate::git::lock(&town.repo_dir(&a.rig))?;
    let repo = git2::Repository::open(town.repo_dir(&a.rig))?;
    // A town moved since the worktree was made: its registration names the old place,
    // which the removal must not touch.
    crate::git::repair_worktree(&repo, wt)?;
    crate::git::remove_worktree(&repo, wt)?;
    super::workspace::remove_private(town, &a.rig, &a.name)?;
    Ok(false)
}

/// The agent's worktree, when it still exists on disk: under the town's current root
/// (the recorded path may name where the town was before it moved).
fn existing_worktree(town: &Town, a: &agents::Agent) -> Option<std::path::PathBuf> {
    town.agent_worktree(a).filter(|p| p.exists())
}
