//! Beads: work items of a rig, and the queries the use cases ask of them.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

pub const STATUSES: &[&str] = &[
    "open",
    "hooked",
    "in_progress",
    "done",
    "failed",
    "escalated",
    "deferred",
    "cancelled",
];

/// Terminal statuses: the bead's work is over, one way or another.
pub const TERMINAL: &[&str] = &["done", "failed", "escalated", "deferred", "cancelled"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bead {
    pub id: String,
    pub rig: String,
    pub title: String,
    pub body: String,
    pub status: String,
    /// True while the bead waits for a free polecat slot of its rig.
    pub queued: bool,
    pub attempts: i64,
    pub branch: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

const COLS: &str =
    "id, rig, title, body, status, queued_at, attempts, branch, created_at, updated_at, version";

fn from_row(r: &Row) -> rusqlite::Result<Bead> {
    Ok(Bead {
        id: r.get(0)?,
        rig: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
        status: r.get(4)?,
        queued: r.get::<_, Option<i64>>(5)?.is_some(),
        attempts: r.get(6)?,
        branch: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        version: r.get(10)?,
    })
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Bead>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM beads WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

pub fn exists(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM beads WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
}

pub fn list(
    conn: &Connection,
    rig: Option<&str>,
    status: Option<&str>,
) -> rusqlite::Result<Vec<Bead>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM beads WHERE (?1 IS NULL OR rig = ?1) AND (?2 IS NULL OR status = ?2)
         ORDER BY created_at, id"
    ))?;
    st.query_map(params![rig, status], from_row)?.collect()
}

pub fn insert(conn: &Connection, b: &Bead) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO beads ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8, ?9, ?10)"
        ),
        params![
            b.id,
            b.rig,
            b.title,
            b.body,
            b.status,
            b.attempts,
            b.branch,
            b.created_at,
            b.updated_at,
            b.version
        ],
    )?;
    Ok(())
}

/// Bead counts per (rig, status), for `gt status`.
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT rig, status, count(*) FROM beads GROUP BY rig, status ORDER BY rig, status",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// Queued beads per rig.
pub fn queued_counts(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT rig, count(*) FROM beads WHERE status = 'open' AND queued_at IS NOT NULL GROUP BY rig",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// Open beads waiting for a slot, oldest first (the patrol dispatches them in this order).
pub fn queued(conn: &Connection, rig: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT id FROM beads WHERE rig = ?1 AND status = 'open' AND queued_at IS NOT NULL
         ORDER BY queued_at, id",
    )?;
    st.query_map([rig], |r| r.get(0))?.collect()
}

/// Mark an open bead as waiting for a free polecat slot (the first time only).
pub fn set_queued(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE beads SET queued_at = ?2, updated_at = ?2, version = version + 1
         WHERE id = ?1 AND status = 'open' AND queued_at IS NULL",
        params![id, now],
    )?;
    Ok(n == 1)
}

/// Open beads waiting for a slot, with when each was queued, oldest first.
pub fn queued_since(conn: &Connection, rig: &str) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT queued_at, id FROM beads WHERE rig = ?1 AND status = 'open' AND queued_at IS NOT NULL
         ORDER BY queued_at, id",
    )?;
    st.query_map([rig], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}
