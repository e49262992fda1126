//! The merge queue: a done bead's merge request is reviewed (`review.rs`: `gt diff`,
//! `gt mq show`) and landed on its rig's default branch by deterministic code, one
//! writer per rig (`land.rs`, with its gates in `gate.rs`), per the rig's policy and style.

mod gate;
pub mod land;
mod review;
pub mod source;

pub use review::{Change, CommitLine, FileStat, HistoryLine, Shown, diff, show};

use crate::error::{Error, Result};

/// How a rig's merge requests land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A person approves each one (`gt mq approve`); then it lands like `auto`.
    Review,
    /// Lands once its gate passes, without approval.
    Auto,
    /// Only recorded; nothing lands.
    Off,
}

impl Policy {
    pub const NAMES: [&'static str; 3] = ["review", "auto", "off"];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Review => "review",
            Policy::Auto => "auto",
            Policy::Off => "off",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Policy> {
        match s {
            "review" => Ok(Policy::Review),
            "auto" => Ok(Policy::Auto),
            "off" => Ok(Policy::Off),
            _ => Err(
                Error::usage(format!("--merge {s:?} is not a landing policy"))
                    .with_hint("use review, auto or off"),
            ),
        }
    }
}

/// How a change is put on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A merge commit with the target and the change as parents: the agent's commits kept.
    Merge,
    /// One new commit on the target with the change's whole diff.
    Squash,
    /// The change's commits replayed one by one on the target.
    Rebase,
}

impl Style {
    pub const NAMES: [&'static str; 3] = ["merge", "squash", "rebase"];

    pub fn as_str(self) -> &'static str {
        match self {
            Style::Merge => "merge",
            Style::Squash => "squash",
            Style::Rebase => "rebase",
        }
    }
}

impl std::str::FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Style> {
        match s {
            "merge" => Ok(Style::Merge),
            "squash" => Ok(Style::Squash),
            "rebase" => Ok(Style::Rebase),
            _ => Err(
                Error::usage(format!("--merge-style {s:?} is not a merge style"))
                    .with_hint("use merge, squash or rebase"),
            ),
        }
    }
}

use crate::runtime::Runtime;
use crate::state::merge_requests::{self, MergeRequest, MrState};
use crate::town::Town;
use crate::util::now_ms;

/// A merge request by id, or the latest of a bead.
pub fn find(town: &Town, id: &str) -> Result<MergeRequest> {
    let found = match id.parse::<i64>() {
        Ok(n) => merge_requests::get(town.db.conn(), n),
        Err(_) => merge_requests::latest(town.db.conn(), id),
    }
    .map_err(|e| town.db_err(e))?;
    found.ok_or_else(|| {
        Error::not_found(
            format!("merge request {id}"),
            Some("`gt mq list` lists them; a bead has one once it is done".into()),
        )
    })
}

/// A merge request with why it is where it is, in words.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub mr: MergeRequest,
    /// Its bead's title.
    pub title: String,
    /// Why it waits (or how it ended), for a person.
    pub why: String,
}

/// Which merge requests a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The live queue: what waits (needs-review, queued, testing) and what ended but
    /// still needs a person (failed for good: its bead gave up; merged but not in the
    /// user's repository yet).
    Live,
    /// Every one, history included.
    All,
}

/// Whether `m` belongs to the live queue (see `Listing::Live`); `bead_failed`: its bead
/// gave up.
fn live(m: &MergeRequest, bead_failed: bool) -> bool {
    match m.state {
        MrState::NeedsReview | MrState::Queued | MrState::Testing => true,
        MrState::Failed => bead_failed,
        MrState::Merged => m
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with(source::NOT_DELIVERED)),
        _ => false,
    }
}

/// Merge requests (of one rig, or all; only `states` when given, else the live queue
/// or all of them as `which` says), oldest first, each with why it waits.
pub fn list(
    town: &Town,
    rig: Option<&str>,
    states: &[MrState],
    which: Listing,
) -> Result<Vec<Listed>> {
    if let Some(r) = rig {
        crate::town::rig::get(town, r)?;
    }
    let conn = town.db.conn();
    let all = merge_requests::list(conn, rig).map_err(|e| town.db_err(e))?;
    let rigs: std::collections::HashMap<String, crate::state::rigs::Rig> =
        crate::state::rigs::all(conn)
            .map_err(|e| town.db_err(e))?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
    // Queue positions per rig, in landing order.
    let mut queue: Vec<&MergeRequest> = all.iter().filter(|m| m.state == MrState::Queued).collect();
    queue.sort_by_key(|m| (m.queued_at, m.id));
    let mut out = Vec::new();
    for m in &all {
        if !states.is_empty() && !states.contains(&m.state) {
            continue;
        }
        if states.is_empty() && which == Listing::Live {
            let bead_failed = m.state == MrState::Failed
                && crate::state::beads::get(conn, &m.bead)
                    .map_err(|e| town.db_err(e))?
                    .is_some_and(|b| b.status == "failed");
            if !live(m, bead_failed) {
                continue;
            }
        }
        let rig = rigs.get(&m.rig);
        let first_line = |r: &Option<String>| {
            r.as_deref()
                .and_then(|r| r.lines().next())
                .unwrap_or("")
                .to_string()
        };
        let why = match m.state {
            MrState::NeedsReview => format!("waits for review: `gt mq approve {}`", m.id),
            MrState::Queued if rig.is_some_and(|r| r.merge == Policy::Off.as_str()) => {
                format!("rig {} lands nothing (--merge off): recorded only", m.rig)
            }
            MrState::Queued => {
                let pos = queue
                    .iter()
                    .filter(|q| q.rig == m.rig)
                    .position(|q| q.id == m.id)
                    .map(|p| p + 1)
                    .unwrap_or(0);
                match &m.reason {
                    Some(r) => format!("#{pos} in the queue; {}", first_line(&Some(r.clone()))),
                    None => format!("#{pos} in the queue of rig {}", m.rig),
                }
            }
            MrState::Testing if land::refused(m).is_some() => format!(
                "cannot land: {}",
                first_line(&land::refused(m).map(str::to_string))
            ),
            MrState::Testing => match m.step.as_deref() {
                Some("gate") => format!("its gate runs (run {})", m.gate_runs),
                Some("target-gate") => "the gate runs on the target alone".to_string(),
                Some(s) => format!("being landed (step {s})"),
                None => "being landed".to_string(),
            },
            MrState::Merged => {
                let on = format!(
                    "on {} at {}",
                    m.target.as_deref().unwrap_or("the target"),
                    m.merged_commit
                        .as_deref()
                        .map(|c| &c[..12.min(c.len())])
                        .unwrap_or("?")
                );
                match m
                    .reason
                    .as_deref()
                    .filter(|r| r.starts_with(source::NOT_DELIVERED))
                {
                    Some(r) => format!("{on}; {}", first_line(&Some(r.to_string()))),
                    None => on,
                }
            }
            _ => first_line(&m.reason),
        };
        let title = crate::state::beads::get(conn, &m.bead)
            .map_err(|e| town.db_err(e))?
            .map(|b| b.title)
            .unwrap_or_default();
        out.push(Listed {
            mr: m.clone(),
            title,
            why,
        });
    }
    Ok(out)
}

/// `gt mq approve ID`: a person lets a merge request land (it joins the queue at its
/// place: its age counts from when it was recorded).
pub fn approve(town: &mut Town, id: &str) -> Result<MergeRequest> {
    let mr = find(town, id)?;
    match mr.state {
        MrState::NeedsReview => {}
        MrState::Queued | MrState::Testing => return Ok(mr), // approved already
        other => {
            return Err(Error::conflict(
                format!(
                    "merge request {} is {}; nothing to approve",
                    mr.id,
                    other.as_str()
                ),
                Some(format!("see `gt mq show {}`", mr.id)),
            ));
        }
    }
    town.db.write(|tx| {
        let n = tx
            .execute(
                "UPDATE merge_requests SET state = 'queued', reason = NULL, updated_at = ?3, version = version + 1
                 WHERE id = ?1 AND version = ?2 AND state = 'needs-review'",
                rusqlite::params![mr.id, mr.version, now_ms()],
            )
            .map_err(|e| tx.err(e))?;
        if n != 1 {
            return Err(Error::conflict(
                format!("merge request {} changed while it was being approved", mr.id),
                Some(format!("see `gt mq show {}` and try again", mr.id)),
            ));
        }
        tx.event("mr.approved", &mr.bead, serde_json::json!({ "mr": mr.id }))
    })?;
    crate::town::watch::poke(town);
    find(town, &mr.id.to_string())
}

/// `gt mq reject ID -m WHY`: a person sends the work back; its bead reopens on its
/// branch with the reason in its prime.
pub fn reject(town: &mut Town, id: &str, why: &str) -> Result<MergeRequest> {
    let why = why.trim();
    if why.is_empty() {
        return Err(Error::usage("a rejection needs a reason: -m WHY")
            .with_hint("the agent that reworks the bead reads it in its prime"));
    }
    let mr = find(town, id)?;
    match mr.state {
        MrState::NeedsReview | MrState::Queued => {}
        MrState::Testing => {
            return Err(Error::conflict(
                format!("merge request {} is being landed right now", mr.id),
                Some(
                    "wait for the pass to end (`gt mq show`), then reject it if it did not land"
                        .into(),
                ),
            ));
        }
        other => {
            return Err(Error::conflict(
                format!(
                    "merge request {} is {}; nothing to reject",
                    mr.id,
                    other.as_str()
                ),
                Some(format!("see `gt mq show {}`", mr.id)),
            ));
        }
    }
    let rig = crate::town::rig::get(town, &mr.rig)?;
    let detail = format!(
        "A reviewer rejected your change:\n\n{why}\n\nRework it on your branch, commit, and `gt done` again."
    );
    // Under the patrol lease: no pass can be landing it meanwhile (one writer).
    let sent = crate::town::patrol::exclusive(town, |town| {
        let mr = find(town, &mr.id.to_string())?;
        if !matches!(mr.state, MrState::NeedsReview | MrState::Queued) {
            return Err(Error::conflict(
                format!(
                    "merge request {} is {} now; nothing to reject",
                    mr.id,
                    mr.state.as_str()
                ),
                Some(format!("see `gt mq show {}`", mr.id)),
            ));
        }
        let mut report = land::Report::default();
        land::send_back(
            town,
            &rig,
            &mr,
            MrState::Rejected,
            &format!("rejected: {}", why.lines().next().unwrap_or("")),
            &detail,
            &mut report,
        )
    })?;
    if sent.is_none() {
        return Err(Error::conflict(
            "a patrol pass is running (it may be landing this merge request)",
            Some("try again in a moment".into()),
        ));
    }
    crate::town::watch::poke(town);
    find(town, &mr.id.to_string())
}

/// `gt mq run`: land what can land now, as a patrol pass would (under its lease), and
/// wait for running gates up to `wait`. None: a patrol holds the lease.
pub fn run(
    town: &mut Town,
    rt: &dyn Runtime,
    wait: std::time::Duration,
) -> Result<Option<land::Report>> {
    let deadline = std::time::Instant::now() + wait;
    let mut total = land::Report::default();
    loop {
        let Some(r) = crate::town::patrol::exclusive(town, |town| land::pass(town, rt, None))?
        else {
            return Ok(None);
        };
        let gating = !r.waiting.is_empty()
            && merge_requests::list(town.db.conn(), None)
                .map_err(|e| town.db_err(e))?
                .iter()
                .any(|m| {
                    // A gate running is worth the wait; a refused push is not.
                    m.state == MrState::Testing
                        && matches!(
                            m.step.as_deref(),
                            Some("candidate" | "gate" | "target-gate")
                        )
                });
        total.merged.extend(r.merged);
        total.returned.extend(r.returned);
        total.errors.extend(r.errors);
        if !gating || std::time::Instant::now() >= deadline {
            total.waiting = r.waiting;
            return Ok(Some(total));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Review mode is the human gate: a `queued` merge request of `rig` that nobody approved
/// (recorded while the rig landed without review, or left so by an older gt) waits for
/// review instead. Returns the ids held. Runs in the caller's transaction.
pub fn hold_unapproved_tx(tx: &mut crate::state::Tx, rig: &str) -> Result<Vec<i64>> {
    let held = unapproved(tx, rig).map_err(|e| tx.err(e))?;
    let why = format!("rig {rig} lands only approved work (--merge review)");
    for (id, bead) in &held {
        tx.execute(
            "UPDATE merge_requests SET state = 'needs-review', reason = ?2, updated_at = ?3, version = version + 1
             WHERE id = ?1 AND state = 'queued'",
            rusqlite::params![id, why, now_ms()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            "mr.held_for_review",
            bead,
            serde_json::json!({ "mr": id, "why": why }),
        )?;
    }
    Ok(held.into_iter().map(|(id, _)| id).collect())
}

/// Queued merge requests of `rig` that no `mr.approved` event names (id, bead).
fn unapproved(conn: &rusqlite::Connection, rig: &str) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT m.id, m.bead FROM merge_requests m WHERE m.rig = ?1 AND m.state = 'queued'
         AND NOT EXISTS (SELECT 1 FROM events e WHERE e.subject = m.bead AND e.kind = 'mr.approved'
                         AND json_extract(e.data, '$.mr') = m.id)
         ORDER BY m.id",
    )?;
    st.query_map([rig], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// `hold_unapproved_tx` in a transaction of its own, written only when there is any.
pub fn hold_unapproved(town: &mut Town, rig: &str) -> Result<Vec<i64>> {
    if unapproved(town.db.conn(), rig)
        .map_err(|e| town.db_err(e))?
        .is_empty()
    {
        return Ok(Vec::new());
    }
    town.db.write(|tx| hold_unapproved_tx(tx, rig))
}

/// How a done's merge request is recorded: per the rig's policy, or, when a completed
/// bead's head is already on the rig's target (the work changed nothing), as no change
/// at all: never queued, never called a landing. Returns the state and, for no change,
/// why.
pub fn recorded_state(
    town: &Town,
    rig: &crate::state::rigs::Rig,
    head: &str,
    completed: bool,
) -> Result<(MrState, Option<String>)> {
    let policy = match rig.merge.parse::<Policy>() {
        Ok(Policy::Review) => MrState::NeedsReview,
        _ => MrState::Queued,
    };
    if !completed {
        return Ok((policy, None));
    }
    let repo = git2::Repository::open(town.repo_dir(&rig.name))?;
    let target = crate::git::branch_head(&repo, &rig.default_branch)?;
    if let (Some(t), Ok(h)) = (target, git2::Oid::from_str(head))
        && let Ok(t) = git2::Oid::from_str(&t)
        && (h == t
            || repo.graph_descendant_of(t, h).unwrap_or(false)
            || changes_nothing(&repo, h, t))
    {
        return Ok((
            MrState::Superseded,
            Some(format!(
                "no change: its head {} is already on {}; nothing to land",
                land::short(head),
                rig.default_branch
            )),
        ));
    }
    Ok((policy, None))
}

/// Whether the work at `head` changes no file against where it left `target` (an empty
/// commit, or a file added and removed again): its tree is its merge base's.
pub fn changes_nothing(repo: &git2::Repository, head: git2::Oid, target: git2::Oid) -> bool {
    let tree = |id| repo.find_commit(id).map(|c| c.tree_id());
    match (repo.merge_base(head, target), tree(head)) {
        (Ok(base), Ok(t)) => tree(base).is_ok_and(|b| b == t),
        _ => false,
    }
}

/// A done that changed nothing: said on its merge request and told to the mayor once,
/// in the recording transaction.
pub fn record_no_change(
    tx: &mut crate::state::Tx,
    mr: i64,
    bead: &str,
    agent: &str,
    why: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE merge_requests SET reason = ?2 WHERE id = ?1",
        rusqlite::params![mr, why],
    )
    .map_err(|e| tx.err(e))?;
    tx.event(
        "mr.no_change",
        bead,
        serde_json::json!({ "mr": mr, "why": why }),
    )?;
    let m = crate::state::mail::Mail::new(
        format!("mq-no-change-{mr}"),
        "patrol",
        crate::town::mail::MAYOR,
        format!("{bead} done by {agent} with no change: nothing to land"),
        format!(
            "Merge request {mr} of bead {bead}: {why}.\n\nThe agent finished without committing anything. \
             If work was expected, `gt bead reopen {bead}` gives it another go; otherwise close it."
        ),
        now_ms(),
    );
    crate::town::mail::post(tx, &m).map(|_| ())
}
