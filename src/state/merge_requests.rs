//! Merge requests: one row per (bead, commit) a done saga recorded.

use rusqlite::{Connection, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MergeRequest {
    pub id: i64,
    pub bead: String,
    pub rig: String,
    pub branch: String,
    pub commit: String,
    pub pushed_to: Option<String>,
    pub created_at: i64,
    /// When `gt rig prune` deleted the local branch (its commit being safe elsewhere).
    pub pruned_at: Option<i64>,
}

pub fn insert(
    conn: &Connection,
    bead: &str,
    rig: &str,
    branch: &str,
    commit: &str,
    pushed_to: Option<&str>,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO merge_requests (bead, rig, branch, commit_id, pushed_to, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(bead, commit_id) DO NOTHING",
        params![bead, rig, branch, commit, pushed_to, now],
    )?;
    Ok(n == 1)
}

pub fn list(conn: &Connection, rig: Option<&str>) -> rusqlite::Result<Vec<MergeRequest>> {
    let mut st = conn.prepare_cached(
        "SELECT id, bead, rig, branch, commit_id, pushed_to, created_at, pruned_at FROM merge_requests
         WHERE (?1 IS NULL OR rig = ?1) ORDER BY id",
    )?;
    st.query_map(params![rig], |r| {
        Ok(MergeRequest {
            id: r.get(0)?,
            bead: r.get(1)?,
            rig: r.get(2)?,
            branch: r.get(3)?,
            commit: r.get(4)?,
            pushed_to: r.get(5)?,
            created_at: r.get(6)?,
            pruned_at: r.get(7)?,
        })
    })?
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
