//! Merge requests: one row per (bead, commit) a done saga recorded, with where it
//! stands in the merge queue and how its landing went.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

/// Where a merge request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MrState {
    /// Waiting its turn to land (approved, or its rig lands without review).
    Queued,
    /// Waiting for a person: `gt mq approve ID` or `gt mq reject ID -m WHY`.
    NeedsReview,
    /// Being landed: its candidate is built or its gate runs.
    Testing,
    /// On the target branch (and the remote, when the rig has one).
    Merged,
    /// Did not apply on the target: sent back to its bead with the conflicting files.
    Conflict,
    /// Its gate failed (sent back with the output), or it ran out of attempts.
    Failed,
    /// A person rejected it (sent back with the reason).
    Rejected,
    /// Not landed, and never will be: newer work of its bead, or its bead was closed.
    Superseded,
}

impl MrState {
    pub const ALL: [MrState; 8] = [
        MrState::Queued,
        MrState::NeedsReview,
        MrState::Testing,
        MrState::Merged,
        MrState::Conflict,
        MrState::Failed,
        MrState::Rejected,
        MrState::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MrState::Queued => "queued",
            MrState::NeedsReview => "needs-review",
            MrState::Testing => "testing",
            MrState::Merged => "merged",
            MrState::Conflict => "conflict",
            MrState::Failed => "failed",
            MrState::Rejected => "rejected",
            MrState::Superseded => "superseded",
        }
    }

    /// Still on its way (not yet merged, sent back or dropped).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            MrState::Queued | MrState::NeedsReview | MrState::Testing
        )
    }
}

impl std::str::FromStr for MrState {
    type Err = String;
    fn from_str(s: &str) -> Result<MrState, String> {
        MrState::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a merge request state"))
    }
}

impl rusqlite::types::FromSql for MrState {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        v.as_str()?
            .parse()
            .map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

impl rusqlite::ToSql for MrState {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MergeRequest {
    pub id: i64,
    pub bead: String,
    pub rig: String,
    pub branch: String,
    pub commit: String,
    pub pushed_to: Option<String>,
    pub created_at: i64,
    /// When `gt rig prune` (or landing) deleted the local branch.
    pub pruned_at: Option<i64>,
    pub state: MrState,
    /// Its place in the queue: the first merge request of its bead's, so work sent back
    /// and redone keeps its age (oldest first, no starvation).
    pub queued_at: i64,
    /// The branch it lands on (the rig's default branch when recorded).
    pub target: Option<String>,
    /// The landing step reached while `testing`.
    pub step: Option<String>,
    /// The target head its candidate is built on, and the candidate.
    pub base: Option<String>,
    pub candidate: Option<String>,
    /// Gate runs of the current landing (a flaky gate gets one retry).
    pub gate_runs: i64,
    /// Why it waits, was sent back, or failed.
    pub reason: Option<String>,
    /// The target's commit that carries it, once merged.
    pub merged_commit: Option<String>,
    pub merged_at: Option<i64>,
    pub updated_at: i64,
    pub version: i64,
}

const COLS: &str = "id, bead, rig, branch, commit_id, pushed_to, created_at, pruned_at, state, \
     COALESCE(queued_at, created_at), target, step, base, candidate, gate_runs, reason, \
     merged_commit, merged_at, COALESCE(updated_at, created_at), version";

fn from_row(r: &Row) -> rusqlite::Result<MergeRequest> {
    Ok(MergeRequest {
        id: r.get(0)?,
        bead: r.get(1)?,
        rig: r.get(2)?,
        branch: r.get(3)?,
        commit: r.get(4)?,
        pushed_to: r.get(5)?,
        created_at: r.get(6)?,
        pruned_at: r.get(7)?,
        state: r.get(8)?,
        queued_at: r.get(9)?,
        target: r.get(10)?,
        step: r.get(11)?,
        base: r.get(12)?,
        candidate: r.get(13)?,
        gate_runs: r.get(14)?,
        reason: r.get(15)?,
        merged_commit: r.get(16)?,
        merged_at: r.get(17)?,
        updated_at: r.get(18)?,
        version: r.get(19)?,
    })
}

/// What the done saga records: a new merge request in `state`. Older waiting ones of
/// the same bead are superseded (one being landed finishes: its change is in the new
/// one's history), and the new one inherits the oldest one's place in the queue. Returns the new id, or None when this (bead, commit) is recorded already.
pub struct NewMr<'a> {
    pub bead: &'a str,
    pub rig: &'a str,
    pub branch: &'a str,
    pub commit: &'a str,
    pub pushed_to: Option<&'a str>,
    pub target: &'a str,
    pub state: MrState,
}

pub fn insert(conn: &Connection, m: &NewMr, now: i64) -> rusqlite::Result<Option<i64>> {
    let queued_at: i64 = conn.query_row(
        "SELECT COALESCE(MIN(COALESCE(queued_at, created_at)), ?2) FROM merge_requests
         WHERE bead = ?1 AND state <> 'merged'",
        params![m.bead, now],
        |r| r.get(0),
    )?;
    let n = conn.execute(
        "INSERT INTO merge_requests (bead, rig, branch, commit_id, pushed_to, created_at, state, queued_at, target, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?6)
         ON CONFLICT(bead, commit_id) DO NOTHING",
        params![m.bead, m.rig, m.branch, m.commit, m.pushed_to, now, m.state, queued_at, m.target],
    )?;
    if n == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE merge_requests SET state = 'superseded', step = NULL, reason = ?3, updated_at = ?4, version = version + 1
         WHERE bead = ?1 AND id <> ?2 AND state IN ('queued','needs-review')",
        params![m.bead, id, format!("newer work of its bead: merge request {id}"), now],
    )?;
    Ok(Some(id))
}

pub fn list(conn: &Connection, rig: Option<&str>) -> rusqlite::Result<Vec<MergeRequest>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM merge_requests WHERE (?1 IS NULL OR rig = ?1) ORDER BY id"
    ))?;
    st.query_map(params![rig], from_row)?.collect()
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<MergeRequest>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM merge_requests WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// The latest merge request of `bead`.
pub fn latest(conn: &Connection, bead: &str) -> rusqlite::Result<Option<MergeRequest>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM merge_requests WHERE bead = ?1 ORDER BY id DESC LIMIT 1"),
        [bead],
        from_row,
    )
    .optional()
}

/// Open merge requests of `rig` in `state`, in queue order (oldest first).
pub fn in_state(
    conn: &Connection,
    rig: &str,
    state: MrState,
) -> rusqlite::Result<Vec<MergeRequest>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM merge_requests WHERE rig = ?1 AND state = ?2
         ORDER BY COALESCE(queued_at, created_at), id"
    ))?;
    st.query_map(params![rig, state], from_row)?.collect()
}

/// Merge requests per state, over the town (or one rig).
pub fn counts(conn: &Connection, rig: Option<&str>) -> rusqlite::Result<Vec<(MrState, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT state, COUNT(*) FROM merge_requests WHERE (?1 IS NULL OR rig = ?1) GROUP BY state ORDER BY state",
    )?;
    st.query_map(params![rig], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Mark the merge requests of `bead` on `branch` as pruned (the local branch deleted).
pub fn mark_pruned(
    conn: &Connection,
    bead: &str,
    branch: &str,
    now: i64,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE merge_requests SET pruned_at = ?3 WHERE bead = ?1 AND branch = ?2 AND pruned_at IS NULL",
        params![bead, branch, now],
    )
}
