//! Landing: one writer per rig takes the oldest approved merge request and puts it on
//! the rig's default branch. Steps, each checkpointed in the merge request's row (and
//! each with a fail point), so a pass killed anywhere resumes where it stopped:
//!
//! `picked` (bead still done, branch still at the recorded commit; the target fetched
//! from the remote) → `candidate` (conflicts found in memory; target + the change built
//! as commits the host alone references) → `gate` (the test command on a host-only
//! checkout, in a container isolated as agents are) → `gated` → `pushed` (the remote's
//! target moved from the base to the candidate by compare-and-swap, read back) →
//! merged (the local target moved by compare-and-swap; bead, convoy and event in one
//! transaction; the branch pruned once safe).
//!
//! Never a checkout or merge in a worktree an agent uses; never a merge of a bead that
//! is not done; never a push of a target that lacks the verified change.

pub use super::gate::LABEL_GATE;
use super::gate::{Gate, broken_target, start_gate, sweep_gates, sweep_scratch, watch_gate};
use super::{Policy, Style};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::state::merge_requests::{self, MergeRequest, MrState};
use crate::state::{beads, rigs::Rig};
use crate::town::Town;
use crate::town::mail::MAYOR;
use crate::util::now_ms;
use git2::{Oid, Repository};
use std::path::PathBuf;
use std::time::Duration;

/// How many merge requests one rig may land in one pass (a bound, not a target).
const MAX_PER_PASS: usize = 100;

/// What one pass of the queue did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// `bead (mr N)` landed on its target.
    pub merged: Vec<String>,
    /// Sent back to the work: `bead (mr N): why`.
    pub returned: Vec<String>,
    /// Waiting on a running gate, a broken target or a remote: `mr N: why`.
    pub waiting: Vec<String>,
    /// Problems that keep a merge request or a rig from moving (said, then retried).
    pub errors: Vec<String>,
    /// Per rig, the remote target head this pass itself pushed and read back: the next
    /// landing builds on it without fetching again (its push is compare-and-swap anyway).
    #[serde(skip)]
    known_remote: std::collections::HashMap<String, String>,
}

/// Where one merge request's landing got to in this call.
pub(super) enum Progress {
    /// Moved a step; call again.
    Next,
    /// Waiting for something outside this pass (a gate running, the target fixed).
    Wait(String),
    /// Done with it (merged, sent back, superseded): take the next one.
    Finished,
}

/// One pass over every rig whose policy lands work. `rt` runs the gates. `listed`: the
/// town's containers as this pass already listed them (patrol's), so the stray-gate
/// sweep costs no second list; None lists them here.
pub fn pass(
    town: &mut Town,
    rt: &dyn Runtime,
    listed: Option<&[crate::runtime::Observed]>,
) -> Result<Report> {
    let mut report = Report::default();
    strand_none(town)?;
    sweep_gates(town, rt, listed)?;
    for rig in rigs_landing(town)? {
        sweep_scratch(town, &rig)?;
        // A drained rig lands nothing until `gt resume` (a running gate waits).
        if let Some(d) = crate::town::drain::active(town, &rig.name)? {
            report.waiting.push(format!(
                "rig {}: drained ({}) since {}",
                rig.name,
                d.scope,
                crate::util::format_time(d.since)
            ));
            continue;
        }
        if let Err(e) = land_rig(town, rt, &rig, &mut report) {
            if matches!(
                e,
                Error::LeaseLost { .. } | Error::RuntimeUnavailable { .. }
            ) {
                return Err(e);
            }
            report.errors.push(format!("rig {}: {e}", rig.name));
        }
    }
    Ok(report)
}

/// A rig set to `--merge off` while one of its merge requests was being landed: that
/// one goes back to the queue (it lands if the policy comes back), its gate is swept.
fn strand_none(town: &mut Town) -> Result<()> {
    let off: Vec<Rig> = crate::state::rigs::all(town.db.conn())
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|r| r.merge == Policy::Off.as_str())
        .collect();
    for rig in off {
        for mr in merge_requests::in_state(town.db.conn(), &rig.name, MrState::Testing)
            .map_err(|e| town.db_err(e))?
        {
            requeue(town, &mr, "its rig stopped landing work (--merge off)")?;
        }
    }
    Ok(())
}

fn rigs_landing(town: &Town) -> Result<Vec<Rig>> {
    Ok(crate::state::rigs::all(town.db.conn())
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|r| r.merge.parse::<Policy>().is_ok_and(|p| p != Policy::Off))
        .collect())
}

fn land_rig(town: &mut Town, rt: &dyn Runtime, rig: &Rig, report: &mut Report) -> Result<()> {
    if rig.merge == Policy::Review.as_str() {
        super::hold_unapproved(town, &rig.name)?;
    }
    let backed_off = crate::town::done::push_backoff(town, &rig.name)?
        .filter(|b| now_ms() < b.until)
        .map(|b| b.why(rig.remote.as_deref().unwrap_or("")));
    if let Some(why) = &backed_off {
        // Its remote does not answer: nothing of this rig waits on it again before the
        // next try (fetches included); other rigs go on.
        report.waiting.push(format!("rig {}: {why}", rig.name));
        return Ok(());
    }
    if rig.remote.is_some() {
        // The remote's target is followed every pass, not only when something lands:
        // new dispatches branch from the local one.
        match current_target(town, rig, &rig.default_branch, None) {
            Ok(head) => {
                report.known_remote.insert(rig.name.clone(), head);
            }
            Err(e @ Error::LeaseLost { .. }) => return Err(e),
            Err(e) if crate::git::timed_out(&e) => {
                let remote = rig.remote.as_deref().unwrap_or("");
                let b = crate::town::done::record_push_failure(town, &rig.name, remote, &e)?;
                report
                    .waiting
                    .push(format!("rig {}: {}", rig.name, b.why(remote)));
                return Ok(());
            }
            Err(e) => tracing::warn!("rig {}: its target not followed: {e}", rig.name),
        }
    }
    // A rig landing into the user's own repository: their commits on the target first
    // (the landing builds on them), their repository brought up to what landed after.
    super::source::sync(town, rig, report)?;
    let merged_before = report.merged.len();
    let result = land_some(town, rt, rig, report);
    if report.merged.len() > merged_before {
        super::source::sync(town, rig, report)?;
    }
    // Merged branches go once their work is safe elsewhere (`gt rig prune`'s rule): one
    // look at the remote for all of this pass's merges, or for a merge whose pass was
    // killed before it pruned (pending from the merge's own transaction).
    let local_pending = meta_set(town, &local_prune_key(&rig.name))?;
    if report.merged.len() > merged_before || local_pending {
        match crate::town::rig::prune(town, Some(&rig.name), false) {
            Ok(_) if local_pending => town.db.write(|tx| {
                tx.execute(
                    "DELETE FROM meta WHERE key = ?1",
                    [local_prune_key(&rig.name)],
                )
                .map_err(|e| tx.err(e))?;
                tx.event("mq.local_pruned", &rig.name, serde_json::json!({}))
            })?,
            Ok(_) => {}
            Err(e @ Error::LeaseLost { .. }) => return Err(e),
            Err(e) => tracing::warn!("rig {}: branches not pruned after merging: {e}", rig.name),
        }
    }
    if rig.remote.is_some()
        && (report.merged.len() > merged_before || remote_prune_pending(town, &rig.name)?)
    {
        prune_remote_branches(town, rig, report)?;
    }
    result
}

/// The meta key set while the remote's merged `polecat/*` branches wait to be deleted
/// (the remote did not answer): retried each pass, under the push backoff.
fn remote_prune_key(rig: &str) -> String {
    format!("mq.remote_prune.{rig}")
}

fn remote_prune_pending(town: &Town, rig: &str) -> Result<bool> {
    meta_set(town, &remote_prune_key(rig))
}

/// The meta key set (in the merge's own transaction) until the rig's local branches
/// were pruned after a merge: a gt killed in between prunes on a later pass.
fn local_prune_key(rig: &str) -> String {
    format!("mq.local_prune.{rig}")
}

/// What a merge leaves pending until its pass pruned after it.
const AFTER_MERGE: &str = "after a merge";

fn meta_set(town: &Town, key: &str) -> Result<bool> {
    town.db
        .conn()
        .query_row("SELECT COUNT(*) FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n > 0)
        .map_err(|e| town.db_err(e))
}

/// After merges: the agents' branches gt pushed to the remote go too, once their work
/// is on the target and only if still at the commit gt pushed. A remote that does not
/// answer is backed off and retried; it never fails the pass.
fn prune_remote_branches(town: &mut Town, rig: &Rig, report: &mut Report) -> Result<()> {
    let remote = rig.remote.clone().unwrap_or_default();
    let key = remote_prune_key(&rig.name);
    let pending = remote_prune_pending(town, &rig.name)?;
    match crate::town::rig::prune_remote(town, Some(&rig.name), false) {
        Ok(_) => {
            if pending {
                town.db.write(|tx| {
                    tx.execute("DELETE FROM meta WHERE key = ?1", [&key])
                        .map_err(|e| tx.err(e))?;
                    tx.event("mq.remote_pruned", &rig.name, serde_json::json!({}))
                })?;
            }
            Ok(())
        }
        Err(e @ Error::LeaseLost { .. }) => Err(e),
        Err(e) => {
            // Pending after a merge, not yet after a failure: the failure is said once.
            let said: Option<String> = {
                use rusqlite::OptionalExtension;
                town.db
                    .conn()
                    .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(|e| town.db_err(e))?
            };
            if said.is_none_or(|v| v == AFTER_MERGE) {
                town.db.write(|tx| {
                    tx.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                        rusqlite::params![key, e.to_string()],
                    )
                    .map_err(|e| tx.err(e))?;
                    tx.event(
                        "mq.remote_prune_waits",
                        &rig.name,
                        serde_json::json!({ "error": e.to_string() }),
                    )
                })?;
            }
            if crate::git::timed_out(&e) {
                let b = crate::town::done::record_push_failure(town, &rig.name, &remote, &e)?;
                report
                    .waiting
                    .push(format!("rig {}: {}", rig.name, b.why(&remote)));
            } else {
                tracing::warn!(
                    "rig {}: merged branches not deleted from {remote}: {e}",
                    rig.name
                );
            }
            Ok(())
        }
    }
}

fn land_some(town: &mut Town, rt: &dyn Runtime, rig: &Rig, report: &mut Report) -> Result<()> {
    for _ in 0..MAX_PER_PASS {
        // One writer per rig: the merge request being landed goes on before another starts.
        let current = match merge_requests::in_state(town.db.conn(), &rig.name, MrState::Testing)
            .map_err(|e| town.db_err(e))?
            .into_iter()
            .next()
        {
            Some(mr) => mr,
            None => match next_queued(town, rig)? {
                Some(mr) => mr,
                None => return Ok(()),
            },
        };
        let label = format!("{} (mr {})", current.bead, current.id);
        loop {
            let mr = merge_requests::get(town.db.conn(), current.id)
                .map_err(|e| town.db_err(e))?
                .ok_or_else(|| Error::Other(format!("merge request {} vanished", current.id)))?;
            match step(town, rt, rig, &mr, report) {
                Ok(Progress::Next) => continue,
                Ok(Progress::Finished) => break,
                Ok(Progress::Wait(why)) => {
                    report.waiting.push(format!("mr {}: {why}", mr.id));
                    return Ok(());
                }
                Err(e) => {
                    note_problem(town, &mr, &e)?;
                    return Err(Error::Other(format!("{label}: {e}")));
                }
            }
        }
    }
    Ok(())
}

/// The oldest queued merge request of the rig (its place kept across bounces).
fn next_queued(town: &Town, rig: &Rig) -> Result<Option<MergeRequest>> {
    Ok(
        merge_requests::in_state(town.db.conn(), &rig.name, MrState::Queued)
            .map_err(|e| town.db_err(e))?
            .into_iter()
            .next(),
    )
}

pub(super) fn target_of(mr: &MergeRequest, rig: &Rig) -> String {
    mr.target
        .clone()
        .unwrap_or_else(|| rig.default_branch.clone())
}

/// One step of one merge request's landing, chosen by its checkpoint.
fn step(
    town: &mut Town,
    rt: &dyn Runtime,
    rig: &Rig,
    mr: &MergeRequest,
    report: &mut Report,
) -> Result<Progress> {
    match (mr.state, mr.step.as_deref()) {
        (MrState::Queued, _) => pick(town, rig, mr, report),
        (MrState::Testing, Some("candidate")) => {
            if rig.test_command.is_none() {
                checkpoint(town, mr, "gated", &[], &["mr.gated"])?;
                return Ok(Progress::Next);
            }
            if let Gate::Unbuildable(e) = start_gate(town, rt, rig, mr, false)? {
                let why = format!("its files cannot be checked out: {e}");
                let detail = format!(
                    "The gate could not check out your change: {e}\n\nCheck the paths your commits add, fix them, and `gt done` again."
                );
                send_back(town, rig, mr, MrState::Failed, &why, &detail, report)?;
                return Ok(Progress::Finished);
            }
            Ok(Progress::Next)
        }
        (MrState::Testing, Some("gate")) | (MrState::Testing, Some("target-gate")) => {
            watch_gate(town, rt, rig, mr, report)
        }
        (MrState::Testing, Some("gated")) => push(town, rig, mr, report),
        (MrState::Testing, Some("pushed")) => finish(town, rig, mr, report),
        (MrState::Testing, other) => {
            // A step this binary does not know (or none): start over from the pick.
            tracing::warn!(
                "merge request {} was at step {other:?}; landing it again from the start",
                mr.id
            );
            requeue(town, mr, "its landing restarts from the beginning")?;
            Ok(Progress::Next)
        }
        _ => Ok(Progress::Finished),
    }
}

/// `picked`: take it only if it is still what was reviewed, then fetch the target.
fn pick(town: &mut Town, rig: &Rig, mr: &MergeRequest, report: &mut Report) -> Result<Progress> {
    crate::interrupt::step("mq.picked.before")?;
    let bead = beads::get(town.db.conn(), &mr.bead)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| {
            Error::Other(format!(
                "bead {} of merge request {} is gone",
                mr.bead, mr.id
            ))
        })?;
    if bead.status != "done" {
        supersede(town, mr, &format!("its bead is {}, not done", bead.status))?;
        return Ok(Progress::Finished);
    }
    let repo_dir = town.repo_dir(&rig.name);
    let repo = Repository::open(&repo_dir)?;
    match crate::git::branch_head(&repo, &mr.branch)? {
        Some(h) if h == mr.commit => {}
        Some(h) => {
            supersede(
                town,
                mr,
                &format!(
                    "its branch moved on to {} since it was recorded",
                    &h[..12.min(h.len())]
                ),
            )?;
            return Ok(Progress::Finished);
        }
        None if repo.find_commit(Oid::from_str(&mr.commit)?).is_err() => {
            supersede(town, mr, "its branch and commit are gone")?;
            return Ok(Progress::Finished);
        }
        None => {} // pruned after its push: the commit is still here
    }
    let target = target_of(mr, rig);
    let base = current_target(town, rig, &target, report.known_remote.get(&rig.name))?;
    if broken_target(town, &rig.name)?.as_deref() == Some(base.as_str()) {
        return Ok(Progress::Wait(format!(
            "{target} fails its gate at {} without any change: waiting for a fix",
            short(&base)
        )));
    }
    crate::interrupt::step("mq.picked.after")?;
    build(town, rig, mr, &base, report)
}

/// The target's head to build on: the remote's (fetched, and the local branch moved up
/// to it when that loses nothing) for a rig with a remote, else the local branch.
fn current_target(
    town: &mut Town,
    rig: &Rig,
    target: &str,
    known: Option<&String>,
) -> Result<String> {
    let repo_dir = town.repo_dir(&rig.name);
    let repo = Repository::open(&repo_dir)?;
    let local = crate::git::branch_head(&repo, target)?;
    let Some(remote) = &rig.remote else {
        return local.ok_or_else(|| Error::git(format!("rig {} has no branch {target}", rig.name)));
    };
    if let Some(k) = known
        && local.as_ref() == Some(k)
    {
        return Ok(k.clone());
    }
    town.db.renew_lease()?;
    let fetched = crate::git::fetch_branch(
        &repo_dir,
        remote,
        target,
        &format!("refs/gt/remote/{target}"),
        timeout(town),
    )?
    .ok_or_else(|| Error::git(format!("{remote} has no branch {target}")))?;
    let theirs = Oid::from_str(&fetched)?;
    match local.as_deref().map(Oid::from_str).transpose()? {
        Some(ours) if ours == theirs => {}
        Some(ours) if repo.graph_descendant_of(theirs, ours)? => {
            repo.reference_matching(
                &format!("refs/heads/{target}"),
                theirs,
                true,
                ours,
                "gt: target brought up to the remote",
            )?;
        }
        Some(ours) => {
            // The local branch has commits the remote lacks (or they diverged): a person
            // rewound or rewrote the remote's target. The remote is the truth: followed
            // (new work branches from it), the old head kept, the mayor told once.
            follow_rewind(town, rig, &repo, target, remote, ours, theirs)?;
        }
        None => {
            repo.reference(
                &format!("refs/heads/{target}"),
                theirs,
                false,
                "gt: target from the remote",
            )?;
        }
    }
    Ok(fetched)
}

/// Where the host keeps a target's head that a rewind of the remote left behind.
const REWOUND: &str = "refs/gt/rewound";

/// The remote's `target` no longer holds the local one (`ours`): a person rewound or
/// rewrote it. The local target follows the remote (compare-and-swap), the old head is
/// kept at `refs/gt/rewound/<target>/<old>`, and the mayor is told once which merged
/// requests are gone from it (they are never landed again by gt).
pub(super) fn follow_rewind(
    town: &mut Town,
    rig: &Rig,
    repo: &Repository,
    target: &str,
    remote: &str,
    ours: Oid,
    theirs: Oid,
) -> Result<()> {
    repo.reference(
        &format!("{REWOUND}/{target}/{ours}"),
        ours,
        true,
        "gt: target head left by a rewind of the remote",
    )?;
    let on = |c: Oid, head: Oid| c == head || repo.graph_descendant_of(head, c).unwrap_or(false);
    let mut removed = Vec::new();
    for m in merge_requests::in_state(town.db.conn(), &rig.name, MrState::Merged)
        .map_err(|e| town.db_err(e))?
    {
        let Some(c) = m
            .merged_commit
            .as_deref()
            .and_then(|c| Oid::from_str(c).ok())
        else {
            continue;
        };
        if target_of(&m, rig) == target && on(c, ours) && !on(c, theirs) {
            removed.push(m);
        }
    }
    let list: String = removed
        .iter()
        .map(|m| {
            format!(
                "  merge request {} ({}): {}\n",
                m.id,
                m.bead,
                m.merged_commit.as_deref().map(short).unwrap_or("?")
            )
        })
        .collect();
    let mail = crate::state::mail::Mail::new(
        format!(
            "mq-rewound-{}-{target}-{}",
            rig.name,
            short(&ours.to_string())
        ),
        "patrol",
        MAYOR,
        format!(
            "[escalation] {remote}'s {target} was rewound: rig {} follows it",
            rig.name
        ),
        format!(
            "{remote}'s {target} is at {theirs}, which does not hold gt's {target} ({ours}): someone \
             rewound or rewrote it. gt follows the remote: its own {target} is now {theirs}, new work \
             branches from there, and nothing removed is pushed back.\n\n{}\
             The old head is kept at {REWOUND}/{target}/{ours}. To redo removed work: `gt bead reopen BEAD`.",
            if removed.is_empty() {
                String::new()
            } else {
                format!("Merged work no longer on {target} (not landed again):\n{list}\n")
            }
        ),
        now_ms(),
    );
    let ids: Vec<i64> = removed.iter().map(|m| m.id).collect();
    town.db.write(|tx| {
        if crate::town::mail::post(tx, &mail)? {
            tx.event(
                "mq.target_rewound",
                &rig.name,
                serde_json::json!({ "target": target, "from": ours.to_string(), "to": theirs.to_string(), "removed": ids }),
            )?;
        }
        Ok(())
    })?;
    repo.reference_matching(
        &format!("refs/heads/{target}"),
        theirs,
        true,
        ours,
        "gt: target follows the remote (rewound)",
    )?;
    Ok(())
}

/// The last commit of `change` that a rewind removed from `target` (now at `base`):
/// landing the change would put it back.
fn removed_in(repo: &Repository, target: &str, base: Oid, change: Oid) -> Result<Option<Oid>> {
    let prefix = format!("{REWOUND}/{target}/");
    for r in repo.references_glob(&format!("{prefix}*"))? {
        let Some(old) = r?.target() else { continue };
        let Ok(m) = repo.merge_base(change, old) else {
            continue;
        };
        if m != base && !repo.graph_descendant_of(base, m)? {
            return Ok(Some(m));
        }
    }
    // Not by ancestry, but by content: a commit of the change that carries the same
    // patch as a removed commit (the agent applied the removed diff again).
    const LOOK_BACK: usize = 500;
    let mut removed = std::collections::HashMap::new();
    for r in repo.references_glob(&format!("{prefix}*"))? {
        let Some(old) = r?.target() else { continue };
        for c in range(repo, base, old)?.into_iter().rev().take(LOOK_BACK) {
            let commit = repo.find_commit(c)?;
            if commit.parent_count() == 1
                && let Some(p) = patch_of(repo, commit.parent_id(0)?, c)?
            {
                removed.entry(p).or_insert(c);
            }
        }
    }
    if removed.is_empty() {
        return Ok(None);
    }
    let fork = repo.merge_base(base, change)?;
    if let Some(p) = patch_of(repo, fork, change)?
        && let Some(c) = removed.get(&p)
    {
        return Ok(Some(*c));
    }
    for c in range(repo, fork, change)?.into_iter().take(LOOK_BACK) {
        let commit = repo.find_commit(c)?;
        if commit.parent_count() == 1
            && let Some(p) = patch_of(repo, commit.parent_id(0)?, c)?
            && let Some(gone) = removed.get(&p)
        {
            return Ok(Some(*gone));
        }
    }
    Ok(None)
}

/// The patch id of the diff from `from` to `to`; None for an empty diff (it says
/// nothing, and matches nothing).
fn patch_of(repo: &Repository, from: Oid, to: Oid) -> Result<Option<Oid>> {
    let old = repo.find_commit(from)?.tree()?;
    let new = repo.find_commit(to)?.tree()?;
    let d = repo.diff_tree_to_tree(Some(&old), Some(&new), None)?;
    if d.deltas().len() == 0 {
        return Ok(None);
    }
    Ok(Some(d.patchid(None)?))
}

/// The target commit that already carries `change` (a person merged it by hand, or an
/// earlier landing did): the same patch as the whole change or as each of its commits,
/// among the target's commits since they forked (bounded).
fn carried_by(repo: &Repository, base: Oid, change: Oid) -> Result<Option<Oid>> {
    const LOOK_BACK: usize = 500;
    let fork = repo.merge_base(base, change)?;
    let patch_id = |from: Oid, to: Oid| patch_of(repo, from, to);
    let Some(whole) = patch_id(fork, change)? else {
        return Ok(None);
    };
    let mut own = Vec::new();
    for c in range(repo, fork, change)? {
        let commit = repo.find_commit(c)?;
        if commit.parent_count() == 1
            && let Some(p) = patch_id(commit.parent_id(0)?, c)?
        {
            own.push(p);
        }
    }
    let mut seen = std::collections::HashMap::new();
    for c in range(repo, fork, base)?.into_iter().rev().take(LOOK_BACK) {
        let commit = repo.find_commit(c)?;
        if commit.parent_count() != 1 {
            continue;
        }
        let Some(id) = patch_id(commit.parent_id(0)?, c)? else {
            continue;
        };
        if id == whole {
            return Ok(Some(c));
        }
        seen.entry(id).or_insert(c);
    }
    // Each of its commits picked by hand: the newest of them carries the last.
    if !own.is_empty() && own.iter().all(|p| seen.contains_key(p)) {
        return Ok(own
            .iter()
            .filter_map(|p| seen.get(p))
            .copied()
            .max_by_key(|c| {
                repo.find_commit(*c)
                    .map(|c| c.time().seconds())
                    .unwrap_or(0)
            }));
    }
    Ok(None)
}

/// The change is already on the target (`carrier` holds it): merged, nothing pushed.
fn already_landed(
    town: &mut Town,
    rig: &Rig,
    mr: &MergeRequest,
    carrier: Oid,
    how: &str,
    report: &mut Report,
) -> Result<Progress> {
    town.db.write(|tx| {
        tx.event(
            "mq.already_on_target",
            &mr.bead,
            serde_json::json!({ "mr": mr.id, "commit": carrier.to_string(), "how": how }),
        )
    })?;
    mark_merged(town, rig, mr, &carrier.to_string(), report)?;
    Ok(Progress::Finished)
}

/// `candidate`: conflicts found in memory; target + the change made as commits.
fn build(
    town: &mut Town,
    rig: &Rig,
    mr: &MergeRequest,
    base: &str,
    report: &mut Report,
) -> Result<Progress> {
    crate::interrupt::step("mq.candidate.before")?;
    let repo = Repository::open(town.repo_dir(&rig.name))?;
    let base = Oid::from_str(base)?;
    let change = Oid::from_str(&mr.commit)?;
    if change == base || repo.graph_descendant_of(base, change)? {
        // Already on the target (landed by hand, or an earlier run got this far).
        mark_merged(town, rig, mr, &base.to_string(), report)?;
        return Ok(Progress::Finished);
    }
    if let Some(gone) = removed_in(&repo, &target_of(mr, rig), base, change)? {
        // Landing it would put back what a person removed from the target.
        let target = target_of(mr, rig);
        let why = format!(
            "it carries {} which a rewind of {target} removed; not landed",
            short(&gone.to_string())
        );
        let detail = format!(
            "Your branch holds commits that were removed from {target} on purpose (up to {gone}). \
             Move your own commits onto {target} without them (`git rebase --onto {target} {gone}`), \
             check the result, commit, and `gt done` again."
        );
        let mut at = mr.clone();
        at.base = Some(base.to_string());
        send_back(town, rig, &at, MrState::Conflict, &why, &detail, report)?;
        return Ok(Progress::Finished);
    }
    let style: Style = rig.merge_style.parse().unwrap_or(Style::Merge);
    let title = beads::get(town.db.conn(), &mr.bead)
        .map_err(|e| town.db_err(e))?
        .map(|b| b.title)
        .unwrap_or_default();
    let built = match candidate(&repo, base, change, style, &mr.bead, &title, mr.id) {
        Ok(b) => b,
        Err(e) => {
            // The change's content cannot be merged (a path or object libgit2 refuses):
            // its own problem, sent back, never a block on the rig's queue.
            let why = format!("cannot be built on {}: {e}", target_of(mr, rig));
            let detail = format!(
                "Merging your change failed: {e}\n\nCheck the paths and files your commits add, fix them, and `gt done` again."
            );
            send_back(town, rig, mr, MrState::Failed, &why, &detail, report)?;
            return Ok(Progress::Finished);
        }
    };
    // Work already on the target (merged by hand, or by an earlier landing whose record
    // was lost): recognised, never landed twice nor sent back as a conflict.
    let adds_nothing = match &built {
        Built::Commit(c) => repo.find_commit(*c)?.tree_id() == repo.find_commit(base)?.tree_id(),
        Built::Conflict(_) => false,
    };
    if adds_nothing || matches!(built, Built::Conflict(_)) {
        if let Some(carrier) = carried_by(&repo, base, change)? {
            return already_landed(
                town,
                rig,
                mr,
                carrier,
                "the same patch is on the target",
                report,
            );
        }
        if adds_nothing && super::changes_nothing(&repo, change, base) {
            // Its own commits change nothing (empty, or undone by themselves): no change,
            // never a landing.
            let why = format!(
                "no change: its commits change no file against {}; nothing to land",
                target_of(mr, rig)
            );
            town.db.write(|tx| {
                tx.execute(
                    "UPDATE merge_requests SET state = 'superseded', step = NULL, updated_at = ?2, version = version + 1
                     WHERE id = ?1",
                    rusqlite::params![mr.id, now_ms()],
                )
                .map_err(|e| tx.err(e))?;
                let agent = mr
                    .branch
                    .strip_prefix("polecat/")
                    .and_then(|r| r.split('/').next())
                    .map(|n| format!("{}/{n}", rig.name))
                    .unwrap_or_else(|| format!("the agent on {}", mr.branch));
                super::record_no_change(tx, mr.id, &mr.bead, &agent, &why)
            })?;
            return Ok(Progress::Finished);
        }
        if adds_nothing {
            return already_landed(town, rig, mr, base, "it adds nothing to the target", report);
        }
    }
    match built {
        Built::Commit(c) => {
            // Picked and built in one checkpoint (the base and the candidate together);
            // without a gate, gated too. A crash before it starts the landing over.
            let mut events = vec!["mr.picked", "mr.candidate"];
            let step = if rig.test_command.is_some() {
                "candidate"
            } else {
                events.push("mr.gated");
                "gated"
            };
            checkpoint(
                town,
                mr,
                step,
                &[("base", &base.to_string()), ("candidate", &c.to_string())],
                &events,
            )?;
            crate::interrupt::step("mq.candidate.after")?;
            Ok(Progress::Next)
        }
        Built::Conflict(files) => {
            let why = format!(
                "conflicts with {} at {}: {}",
                target_of(mr, rig),
                short(&base.to_string()),
                files.join(", ")
            );
            let detail = format!(
                "Your change does not apply on {target} ({base}) any more; these files conflict:\n{list}\n\n\
                 Bring your branch up to date with {target} (e.g. `git rebase {target}` and resolve, \
                 or `git merge {target}`), check the result, commit, and `gt done` again.",
                target = target_of(mr, rig),
                base = short(&base.to_string()),
                list = files
                    .iter()
                    .map(|f| format!("  {f}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            let mut at = mr.clone();
            at.base = Some(base.to_string());
            send_back(town, rig, &at, MrState::Conflict, &why, &detail, report)?;
            Ok(Progress::Finished)
        }
    }
}

enum Built {
    Commit(Oid),
    Conflict(Vec<String>),
}

pub(super) fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Target `base` + `change` in `style`, as new commits only the host references (none
/// yet: the candidate is unreferenced until it lands). Conflicts found in memory.
fn candidate(
    repo: &Repository,
    base: Oid,
    change: Oid,
    style: Style,
    bead: &str,
    title: &str,
    mr: i64,
) -> Result<Built> {
    let gt = git2::Signature::now("gt merge queue", "gt@localhost")?;
    let base_c = repo.find_commit(base)?;
    let change_c = repo.find_commit(change)?;
    let merge_base = repo.merge_base(base, change)?;
    // libgit2's merge of the two commits: with criss-cross history it merges the merge
    // bases into a virtual one, as git does, instead of picking one of them.
    let mut index = repo.merge_commits(&base_c, &change_c, None)?;
    if index.has_conflicts() {
        return Ok(Built::Conflict(conflicts(&index)));
    }
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;
    let subject = format!("{bead}: {}", title.lines().next().unwrap_or(""));
    let trailer = format!("Merge-request: {mr}\nBead: {bead}");
    match style {
        Style::Merge => {
            let msg = format!("Merge {subject}\n\n{trailer}\n");
            Ok(Built::Commit(repo.commit(
                None,
                &gt,
                &gt,
                &msg,
                &tree,
                &[&base_c, &change_c],
            )?))
        }
        Style::Squash => {
            let author = change_c.author();
            let mut body = String::new();
            for c in range(repo, merge_base, change)? {
                let c = repo.find_commit(c)?;
                body += &format!("* {}\n", c.summary().ok().flatten().unwrap_or(""));
            }
            let msg = format!("{subject}\n\n{body}\n{trailer}\n");
            Ok(Built::Commit(repo.commit(
                None,
                &author,
                &gt,
                &msg,
                &tree,
                &[&base_c],
            )?))
        }
        Style::Rebase => {
            let mut onto = base_c;
            for c in range(repo, merge_base, change)? {
                let c = repo.find_commit(c)?;
                if c.parent_count() > 1 {
                    // A merge inside the change cannot be replayed as it is: its result
                    // (already checked to apply) lands as one commit instead.
                    let msg =
                        format!("{subject}\n\n(squashed: the change holds merges)\n\n{trailer}\n");
                    return Ok(Built::Commit(repo.commit(
                        None,
                        &change_c.author(),
                        &gt,
                        &msg,
                        &tree,
                        &[&repo.find_commit(base)?],
                    )?));
                }
                let mut idx = repo.cherrypick_commit(&c, &onto, 0, None)?;
                if idx.has_conflicts() {
                    return Ok(Built::Conflict(conflicts(&idx)));
                }
                let t = repo.find_tree(idx.write_tree_to(repo)?)?;
                if t.id() == onto.tree_id() {
                    continue; // nothing left of it on this target
                }
                let msg = c.message().unwrap_or("").to_string();
                let id = repo.commit(None, &c.author(), &gt, &msg, &t, &[&onto])?;
                onto = repo.find_commit(id)?;
            }
            if onto.id() == base {
                // Everything of it is on the target already: a merge with nothing in it.
                return Ok(Built::Commit(base));
            }
            Ok(Built::Commit(onto.id()))
        }
    }
}

/// The commits of `head` not in `base`'s history, oldest first.
fn range(repo: &Repository, base: Oid, head: Oid) -> Result<Vec<Oid>> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    walk.push(head)?;
    walk.hide(base)?;
    Ok(walk.collect::<std::result::Result<Vec<_>, _>>()?)
}

fn conflicts(index: &git2::Index) -> Vec<String> {
    let mut files: Vec<String> = index
        .conflicts()
        .map(|it| {
            it.filter_map(|c| c.ok())
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.dedup();
    files
}

/// `pushed`: the remote's target moved from the base to the candidate (or, without a
/// remote, nothing to do here). A remote that moved on from the candidate itself holds
/// this landing's own earlier push (gt killed before its checkpoint): landed, not again.
fn push(town: &mut Town, rig: &Rig, mr: &MergeRequest, report: &mut Report) -> Result<Progress> {
    crate::interrupt::step("mq.pushed.before")?;
    let (Some(base), Some(cand)) = (mr.base.as_deref(), mr.candidate.as_deref()) else {
        requeue(town, mr, "its landing lost its candidate; built again")?;
        return Ok(Progress::Next);
    };
    if let Some(remote) = &rig.remote {
        // A remote that does not answer is backed off per rig (the done sagas' record):
        // it costs one `push_timeout` per backoff period, not one every pass.
        if let Some(b) = crate::town::done::push_backoff(town, &rig.name)?
            && now_ms() < b.until
        {
            return Ok(Progress::Wait(b.why(remote)));
        }
        town.db.renew_lease()?;
        let target = target_of(mr, rig);
        let pushed = crate::git::push_cas(
            &town.repo_dir(&rig.name),
            remote,
            cand,
            &target,
            base,
            timeout(town),
        );
        match pushed {
            Ok(crate::git::CasPush::Pushed) => {
                crate::interrupt::step("mq.remote_pushed")?;
                // Read back just now: the next landing of this pass builds on it.
                report
                    .known_remote
                    .insert(rig.name.clone(), cand.to_string());
            }
            Ok(crate::git::CasPush::Moved(now)) => {
                report.known_remote.remove(&rig.name);
                if let Some(now) = &now
                    && holds_own_push(town, rig, &target, now, cand)?
                {
                    town.db.write(|tx| {
                        tx.event(
                            "mq.push_recognised",
                            &mr.bead,
                            serde_json::json!({ "mr": mr.id, "candidate": cand, "found": now }),
                        )
                    })?;
                } else {
                    let why = format!(
                        "{remote}'s {target} moved (to {}) while it was being landed; queued again on the new head",
                        now.as_deref().map(short).unwrap_or("nothing")
                    );
                    town.db.write(|tx| {
                        tx.event(
                            "mq.remote_moved",
                            &mr.bead,
                            serde_json::json!({ "mr": mr.id, "expected": base, "found": now }),
                        )
                    })?;
                    requeue(town, mr, &why)?;
                    return Ok(Progress::Next);
                }
            }
            Err(e) if is_refusal(&e) => return refused_push(town, mr, remote, &target, &e),
            Err(e) if crate::git::timed_out(&e) => {
                let b = crate::town::done::record_push_failure(town, &rig.name, remote, &e)?;
                return Ok(Progress::Wait(b.why(remote)));
            }
            Err(e) => return Err(e),
        }
        crate::town::done::clear_push_backoff(town, &rig.name)?;
    }
    checkpoint(town, mr, "pushed", &[], &["mr.pushed"])?;
    crate::interrupt::step("mq.pushed.after")?;
    Ok(Progress::Next)
}

/// Whether the remote's `target`, now at `now`, already holds `cand` (fetched to tell).
fn holds_own_push(town: &Town, rig: &Rig, target: &str, now: &str, cand: &str) -> Result<bool> {
    let Some(remote) = &rig.remote else {
        return Ok(false);
    };
    let repo_dir = town.repo_dir(&rig.name);
    let fetched = crate::git::fetch_branch(
        &repo_dir,
        remote,
        target,
        &format!("refs/gt/remote/{target}"),
        timeout(town),
    )?;
    let repo = Repository::open(&repo_dir)?;
    let head = fetched.unwrap_or_else(|| now.to_string());
    let (head, cand) = (Oid::from_str(&head)?, Oid::from_str(cand)?);
    if repo.find_commit(head).is_err() {
        return Ok(false);
    }
    Ok(head == cand || repo.graph_descendant_of(head, cand)?)
}

/// The prefix of a merge request's reason while its remote refuses the landing push.
pub const REFUSED: &str = "refused: ";

/// A `testing` merge request whose landing push the remote refuses: why, in words.
pub fn refused(mr: &MergeRequest) -> Option<&str> {
    (mr.state == MrState::Testing)
        .then_some(mr.reason.as_deref())
        .flatten()
        .and_then(|r| r.strip_prefix(REFUSED))
}

/// The remote answered and declined the push (a protected branch, a pre-receive hook),
/// as opposed to not answering: git says `[remote rejected]` or `[rejected]`.
fn is_refusal(e: &Error) -> bool {
    let s = e.to_string();
    [
        "[remote rejected]",
        "[rejected]",
        "hook declined",
        "protected branch",
    ]
    .iter()
    .any(|m| s.contains(m))
}

/// The remote refused the landing push: said on the merge request (it waits at its
/// step, retried each pass), told to the mayor once, and a problem in `gt top`/doctor.
fn refused_push(
    town: &mut Town,
    mr: &MergeRequest,
    remote: &str,
    target: &str,
    e: &Error,
) -> Result<Progress> {
    let said = e.to_string();
    // git's own words from the remote: the lines after "failed:" (bounded).
    let detail: String = said
        .split_once("failed: ")
        .map(|(_, r)| r)
        .unwrap_or(&said)
        .chars()
        .take(2000)
        .collect();
    let why = format!("{remote} refused the push to {target}: {detail}");
    let reason = format!("{REFUSED}{why}");
    if mr.reason.as_deref() == Some(reason.as_str()) {
        return Ok(Progress::Wait(reason));
    }
    let mail = crate::state::mail::Mail::new(
        format!("mq-refused-{}", mr.id),
        "patrol",
        MAYOR,
        format!("[escalation] {remote} refuses to let {} land on {target}", mr.bead),
        format!(
            "Merge request {} of bead {} is built and gated, but {remote} refused the push to {target}:

{detail}

             A protected branch or a pre-receive hook declines gt's pushes. Let gt push to {target}              (or land the change by hand); gt tries again every pass and lands it once the remote accepts.
             See `gt mq show {}`.",
            mr.id, mr.bead, mr.id
        ),
        now_ms(),
    );
    town.db.write(|tx| {
        tx.execute(
            "UPDATE merge_requests SET reason = ?2, updated_at = ?3 WHERE id = ?1 AND state = 'testing'",
            rusqlite::params![mr.id, reason, now_ms()],
        )
        .map_err(|e| tx.err(e))?;
        crate::town::mail::post(tx, &mail)?;
        tx.event(
            "mq.push_refused",
            &mr.bead,
            serde_json::json!({ "mr": mr.id, "remote": remote, "target": target, "why": detail }),
        )
    })?;
    Ok(Progress::Wait(reason))
}

/// After the push: the local target moved by compare-and-swap, the merge recorded.
fn finish(town: &mut Town, rig: &Rig, mr: &MergeRequest, report: &mut Report) -> Result<Progress> {
    let (Some(base), Some(cand)) = (mr.base.as_deref(), mr.candidate.as_deref()) else {
        requeue(town, mr, "its landing lost its candidate; built again")?;
        return Ok(Progress::Next);
    };
    let repo = Repository::open(town.repo_dir(&rig.name))?;
    let target = target_of(mr, rig);
    let (base_id, cand_id) = (Oid::from_str(base)?, Oid::from_str(cand)?);
    let local = crate::git::branch_head(&repo, &target)?
        .map(|h| Oid::from_str(&h))
        .transpose()?;
    match local {
        Some(l) if l == cand_id => {}
        // Its own push was found under newer commits of the remote, already followed.
        Some(l) if repo.graph_descendant_of(l, cand_id)? => {}
        Some(l) if l == base_id || repo.graph_descendant_of(cand_id, l)? => {
            repo.reference_matching(
                &format!("refs/heads/{target}"),
                cand_id,
                true,
                l,
                &format!("gt: merge request {} landed", mr.id),
            )?;
        }
        Some(l) if rig.remote.is_some() => {
            // The remote has it (checked when pushed); the local branch went its own way.
            tracing::warn!(
                "rig {}: local {target} ({l}) does not lead to the landed {cand}; left as it is",
                rig.name
            );
        }
        Some(_) => {
            // No remote, and the local target moved under us: build again on it.
            requeue(
                town,
                mr,
                &format!("{target} moved while it was being landed; queued again"),
            )?;
            return Ok(Progress::Next);
        }
        None => {
            repo.reference(
                &format!("refs/heads/{target}"),
                cand_id,
                false,
                "gt: landed",
            )?;
        }
    }
    crate::interrupt::step("mq.advanced.after")?;
    mark_merged(town, rig, mr, cand, report)?;
    crate::interrupt::step("mq.merged.after")?;
    Ok(Progress::Finished)
}

/// The merge request is on its target: merged, its bead's convoys told, the rig's
/// broken-target mark (if any) lifted, and branches safe elsewhere pruned.
fn mark_merged(
    town: &mut Town,
    rig: &Rig,
    mr: &MergeRequest,
    commit: &str,
    report: &mut Report,
) -> Result<()> {
    let target = target_of(mr, rig);
    town.db.write(|tx| {
        let n = tx
            .execute(
                "UPDATE merge_requests SET state = 'merged', step = NULL, merged_commit = ?2, merged_at = ?3,
                   reason = NULL, updated_at = ?3, version = version + 1 WHERE id = ?1 AND state <> 'merged'",
                rusqlite::params![mr.id, commit, now_ms()],
            )
            .map_err(|e| tx.err(e))?;
        if n == 1 {
            tx.execute(
                "DELETE FROM meta WHERE key = ?1",
                [format!("mq.broken.{}", rig.name)],
            )
            .map_err(|e| tx.err(e))?;
            // What this pass prunes after the merge, pending until it did.
            let mut after = vec![local_prune_key(&rig.name)];
            if rig.remote.is_some() {
                after.push(remote_prune_key(&rig.name));
            }
            for key in after {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
                    rusqlite::params![key, AFTER_MERGE],
                )
                .map_err(|e| tx.err(e))?;
            }
            tx.event(
                "mr.merged",
                &mr.bead,
                serde_json::json!({ "mr": mr.id, "target": target, "commit": commit, "style": rig.merge_style }),
            )?;
            crate::town::convoy::on_bead_changed(tx, &mr.bead)?;
        }
        Ok(())
    })?;
    let _ = std::fs::remove_file(rebase_marker(town, &rig.name, &mr.branch));
    report.merged.push(format!("{} (mr {})", mr.bead, mr.id));
    Ok(())
}

/// Where the host notes the commit a returned bead's branch may be rebased onto (the
/// target it was sent back from): a host-only file, read by the import.
pub fn rebase_marker(town: &Town, rig: &str, branch: &str) -> PathBuf {
    town.rig_dir(rig)
        .join("returned")
        .join(branch.replace('/', "%"))
}

/// Send the work back to its bead: the merge request ends in `state` with `why`; the
/// bead reopens on its branch and is queued for a fresh dispatch (an attempt), with
/// `detail` in its prime. Out of attempts, the merge request fails and the mayor gets
/// one mail.
pub(crate) fn send_back(
    town: &mut Town,
    rig: &Rig,
    mr: &MergeRequest,
    state: MrState,
    why: &str,
    detail: &str,
    report: &mut Report,
) -> Result<()> {
    crate::interrupt::step("mq.returned.before")?;
    let max = town.config.defaults.max_attempts as i64;
    let bead = beads::get(town.db.conn(), &mr.bead)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| Error::Other(format!("bead {} is gone", mr.bead)))?;
    let exhausted = bead.attempts >= max;
    // The agent may rebase its branch onto the target it was sent back from: the host
    // keeps the old head reachable and lets the import accept work built on that target.
    let repo = Repository::open(town.repo_dir(&rig.name))?;
    if let Ok(old) = Oid::from_str(&mr.commit) {
        repo.reference(
            &format!("refs/gt/returned/mr{}", mr.id),
            old,
            true,
            "gt: work sent back",
        )?;
        // The bead goes on from its work: a branch pruned meanwhile comes back at it.
        if crate::git::branch_head(&repo, &mr.branch)?.is_none() {
            repo.reference(
                &format!("refs/heads/{}", mr.branch),
                old,
                false,
                "gt: branch of work sent back",
            )?;
        }
    }
    // The target it is measured against: the candidate's base, else (a rejection before
    // any landing) the target's head now.
    let onto = match &mr.base {
        Some(b) => Some(b.clone()),
        None => crate::git::branch_head(&repo, &target_of(mr, rig))?,
    };
    if let Some(base) = &onto {
        let marker = rebase_marker(town, &rig.name, &mr.branch);
        if let Some(dir) = marker.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        crate::util::write_atomic(&marker, base.as_bytes())?;
    }
    let final_state = if exhausted && state != MrState::Rejected {
        MrState::Failed
    } else {
        state
    };
    let reason = if exhausted && state != MrState::Rejected {
        format!("{why}; its bead is out of attempts ({max})")
    } else {
        why.to_string()
    };
    // Given up: the text says so instead of inviting another `gt done` nobody will send.
    let given_up;
    let detail = if exhausted && state != MrState::Rejected {
        given_up = given_up_detail(detail, &mr.bead, max);
        given_up.as_str()
    } else {
        detail
    };
    let mail = (exhausted && state != MrState::Rejected).then(|| {
        crate::state::mail::Mail::new(
            format!("mq-failed-{}", mr.id),
            "patrol",
            MAYOR,
            format!("[escalation] {} could not land: {why}", mr.bead),
            format!(
                "Merge request {} of bead {} ({}) was sent back {} times and is out of attempts.\n\n{detail}\n\n\
                 See `gt mq show {}`; `gt bead reopen {}` gives it more attempts.",
                mr.id, mr.bead, bead.title, max, mr.id, mr.bead
            ),
            now_ms(),
        )
    });
    town.db.write(|tx| {
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE merge_requests SET state = ?2, step = NULL, reason = ?3, updated_at = ?4, version = version + 1,
                   base = ?7 WHERE id = ?1 AND version = ?5 AND state = ?6",
                rusqlite::params![mr.id, final_state, format!("{reason}\n\n{detail}"), now, mr.version, mr.state, onto],
            )
            .map_err(|e| tx.err(e))?;
        if n != 1 {
            return Err(Error::conflict(
                format!("merge request {} changed meanwhile; nothing sent back", mr.id),
                Some(format!("see `gt mq show {}`", mr.id)),
            ));
        }
        if exhausted && state != MrState::Rejected {
            tx.execute(
                "UPDATE beads SET status = 'failed', queued_at = NULL, updated_at = ?2, version = version + 1
                 WHERE id = ?1 AND status = 'done'",
                rusqlite::params![mr.bead, now],
            )
            .map_err(|e| tx.err(e))?;
        } else {
            tx.execute(
                "UPDATE beads SET status = 'open', queued_at = ?2, not_before = NULL, updated_at = ?2, version = version + 1
                 WHERE id = ?1 AND status = 'done'",
                rusqlite::params![mr.bead, now],
            )
            .map_err(|e| tx.err(e))?;
        }
        if let Some(m) = &mail {
            crate::town::mail::post(tx, m)?;
        }
        tx.event(
            "mr.returned",
            &mr.bead,
            serde_json::json!({ "mr": mr.id, "state": final_state.as_str(), "why": why, "reopened": !exhausted || state == MrState::Rejected }),
        )?;
        crate::town::convoy::on_bead_changed(tx, &mr.bead)
    })?;
    report
        .returned
        .push(format!("{} (mr {}): {why}", mr.bead, mr.id));
    Ok(())
}

/// A send-back `detail` for a bead that is out of attempts: what went wrong, without
/// the closing invitation to fix and `gt done` again, and what a person can do instead.
fn given_up_detail(detail: &str, bead: &str, max: i64) -> String {
    let kept: Vec<&str> = detail
        .split("\n\n")
        .filter(|p| !p.contains("`gt done` again"))
        .collect();
    format!(
        "{}\n\nIts bead {bead} is out of attempts ({max}) and failed: no agent works on it again. \
         A person decides: `gt bead reopen {bead}` gives it more attempts, or land the change by hand.",
        kept.join("\n\n")
    )
}

/// Record a landing step and its values on a `testing` merge request.
pub(super) fn checkpoint(
    town: &mut Town,
    mr: &MergeRequest,
    step: &str,
    values: &[(&str, &str)],
    events: &[&str],
) -> Result<()> {
    town.db.write(|tx| {
        let mut sql = "UPDATE merge_requests SET state = 'testing', step = ?2, updated_at = ?3, version = version + 1".to_string();
        for (i, (col, _)) in values.iter().enumerate() {
            sql += &format!(", {col} = ?{}", i + 5);
        }
        if mr.state == MrState::Queued {
            sql += ", gate_runs = 0";
        }
        sql += " WHERE id = ?1 AND version = ?4";
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![&mr.id, &step];
        let now = now_ms();
        params.push(&now);
        params.push(&mr.version);
        for (_, v) in values {
            params.push(v);
        }
        let n = tx.execute(&sql, params.as_slice()).map_err(|e| tx.err(e))?;
        if n != 1 {
            return Err(Error::conflict(
                format!("merge request {} changed while it was being landed", mr.id),
                Some("another `gt mq run` or patrol holds it; it goes on in the next pass".into()),
            ));
        }
        let mut data = serde_json::json!({ "mr": mr.id, "step": step });
        for (k, v) in values {
            data[*k] = serde_json::Value::String(v.to_string());
        }
        for e in events {
            tx.event(e, &mr.bead, data.clone())?;
        }
        Ok(())
    })
}

/// Back to the queue at its place (keeps its age), to be landed from the start.
fn requeue(town: &mut Town, mr: &MergeRequest, why: &str) -> Result<()> {
    town.db.write(|tx| {
        tx.execute(
            "UPDATE merge_requests SET state = 'queued', step = NULL, base = NULL, candidate = NULL, gate_runs = 0,
               reason = ?2, updated_at = ?3, version = version + 1 WHERE id = ?1",
            rusqlite::params![mr.id, why, now_ms()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event("mr.requeued", &mr.bead, serde_json::json!({ "mr": mr.id, "why": why }))
    })
}

fn supersede(town: &mut Town, mr: &MergeRequest, why: &str) -> Result<()> {
    town.db.write(|tx| {
        tx.execute(
            "UPDATE merge_requests SET state = 'superseded', step = NULL, reason = ?2, updated_at = ?3, version = version + 1
             WHERE id = ?1",
            rusqlite::params![mr.id, why, now_ms()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event("mr.superseded", &mr.bead, serde_json::json!({ "mr": mr.id, "why": why }))
    })
}

/// A problem that stops this merge request for now: said on it (why it waits), and
/// retried on the next pass.
fn note_problem(town: &mut Town, mr: &MergeRequest, e: &Error) -> Result<()> {
    let why = format!("waits: {e}");
    if mr.reason.as_deref() == Some(why.as_str()) {
        return Ok(());
    }
    town.db.write(|tx| {
        tx.execute(
            "UPDATE merge_requests SET reason = ?2 WHERE id = ?1 AND state IN ('queued','testing')",
            rusqlite::params![mr.id, why],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            "mr.problem",
            &mr.bead,
            serde_json::json!({ "mr": mr.id, "error": e.to_string() }),
        )
    })
}

fn timeout(town: &Town) -> Duration {
    town.config
        .patrol
        .push_timeout
        .min(town.config.patrol.lease / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch repository with a helper to commit files on top of a commit.
    struct Repo {
        _dir: tempfile::TempDir,
        repo: Repository,
    }

    impl Repo {
        fn new() -> Repo {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repository::init(dir.path()).unwrap();
            Repo { _dir: dir, repo }
        }

        fn commit(&self, parent: Option<Oid>, files: &[(&str, &str)], msg: &str) -> Oid {
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            let parents: Vec<git2::Commit> = parent
                .iter()
                .map(|p| self.repo.find_commit(*p).unwrap())
                .collect();
            let base_tree = parents.first().map(|c| c.tree().unwrap());
            let mut tb = self.repo.treebuilder(base_tree.as_ref()).unwrap();
            for (name, content) in files {
                let blob = self.repo.blob(content.as_bytes()).unwrap();
                tb.insert(name, blob, 0o100644).unwrap();
            }
            let tree = self.repo.find_tree(tb.write().unwrap()).unwrap();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            self.repo
                .commit(None, &sig, &sig, msg, &tree, &refs)
                .unwrap()
        }

        fn file(&self, commit: Oid, name: &str) -> Option<String> {
            let tree = self.repo.find_commit(commit).unwrap().tree().unwrap();
            let entry = tree.get_name(name)?;
            let blob = self.repo.find_blob(entry.id()).unwrap();
            Some(String::from_utf8_lossy(blob.content()).into_owned())
        }
    }

    fn built(b: Built) -> Oid {
        match b {
            Built::Commit(c) => c,
            Built::Conflict(f) => panic!("conflict in {f:?}"),
        }
    }

    #[test]
    fn each_style_puts_target_and_change_together_with_the_right_parents() {
        let r = Repo::new();
        let init = r.commit(None, &[("README", "hello\n")], "init");
        let target = r.commit(Some(init), &[("a.txt", "a\n")], "target moved");
        let c1 = r.commit(Some(init), &[("b.txt", "b\n")], "change one");
        let change = r.commit(Some(c1), &[("c.txt", "c\n")], "change two");
        for style in [Style::Merge, Style::Squash, Style::Rebase] {
            let c = built(candidate(&r.repo, target, change, style, "api-1", "title", 7).unwrap());
            for f in ["README", "a.txt", "b.txt", "c.txt"] {
                assert!(r.file(c, f).is_some(), "{style:?} lacks {f}");
            }
            let commit = r.repo.find_commit(c).unwrap();
            match style {
                Style::Merge => {
                    assert_eq!(
                        commit.parent_ids().collect::<Vec<_>>(),
                        vec![target, change]
                    );
                    assert!(commit.message().unwrap().contains("Merge-request: 7"));
                }
                Style::Squash => {
                    assert_eq!(commit.parent_ids().collect::<Vec<_>>(), vec![target]);
                    let msg = commit.message().unwrap();
                    assert!(
                        msg.contains("* change one") && msg.contains("* change two"),
                        "{msg}"
                    );
                }
                Style::Rebase => {
                    // Two replayed commits, the first on the target, authors kept.
                    let first = commit.parent(0).unwrap();
                    assert_eq!(first.parent_id(0).unwrap(), target);
                    assert_eq!(first.summary().unwrap(), Some("change one"));
                    assert_eq!(commit.author().name().unwrap(), "t");
                }
            }
        }
    }

    #[test]
    fn a_conflict_is_found_in_memory_and_names_its_files() {
        let r = Repo::new();
        let init = r.commit(None, &[("README", "hello\n")], "init");
        let target = r.commit(Some(init), &[("shared.txt", "theirs\n")], "target");
        let change = r.commit(Some(init), &[("shared.txt", "ours\n")], "change");
        for style in [Style::Merge, Style::Squash, Style::Rebase] {
            match candidate(&r.repo, target, change, style, "api-1", "t", 1).unwrap() {
                Built::Conflict(files) => assert_eq!(files, vec!["shared.txt"], "{style:?}"),
                Built::Commit(_) => panic!("{style:?}: no conflict found"),
            }
        }
    }

    #[test]
    fn work_squashed_or_picked_by_hand_is_found_on_the_target_an_empty_change_never() {
        let r = Repo::new();
        let init = r.commit(None, &[("README", "hello\n")], "init");
        let c1 = r.commit(Some(init), &[("b.txt", "b\n")], "one");
        let change = r.commit(Some(c1), &[("c.txt", "c\n")], "two");
        // Squashed by hand, then the target edited the same file further.
        let squash = r.commit(Some(init), &[("b.txt", "b\n"), ("c.txt", "c\n")], "squash");
        let later = r.commit(Some(squash), &[("c.txt", "edited\n")], "later");
        assert_eq!(carried_by(&r.repo, later, change).unwrap(), Some(squash));
        // Picked one by one: the newest pick carries it.
        let p1 = r.commit(Some(init), &[("b.txt", "b\n")], "pick one");
        let p2 = r.commit(Some(p1), &[("c.txt", "c\n")], "pick two");
        assert_eq!(carried_by(&r.repo, p2, change).unwrap(), Some(p2));
        // Not there: nothing found; an empty change matches no empty target commit.
        let other = r.commit(Some(init), &[("d.txt", "d\n")], "other");
        assert_eq!(carried_by(&r.repo, other, change).unwrap(), None);
        let empty = r.commit(Some(init), &[], "empty change");
        let empty_target = r.commit(Some(other), &[], "empty on target");
        assert_eq!(carried_by(&r.repo, empty_target, empty).unwrap(), None);
    }

    #[test]
    fn a_change_already_on_the_target_rebases_to_the_target_itself() {
        let r = Repo::new();
        let init = r.commit(None, &[("README", "hello\n")], "init");
        let change = r.commit(Some(init), &[("b.txt", "b\n")], "change");
        // The target has the same content by another commit (cherry-picked by hand).
        let target = r.commit(Some(init), &[("b.txt", "b\n")], "same change");
        let c = built(candidate(&r.repo, target, change, Style::Rebase, "api-1", "t", 1).unwrap());
        assert_eq!(c, target);
    }
}
