//! The event log: one row per mutation, written in the mutation's own transaction.

use crate::error::Result;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub data: serde_json::Value,
}

/// Who last wrote an event about `subject` (the winner named in a conflict).
pub fn last_actor(conn: &Connection, subject: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT actor FROM events WHERE subject = ?1 ORDER BY id DESC LIMIT 1",
        [subject],
        |r| r.get(0),
    )
    .optional()
    .map_err(|e| crate::error::Error::Other(e.to_string()))
}

/// Events at or after `since_ms` (all when None) about `subject` (any when None),
/// oldest first, at most `limit` of the newest.
pub fn since(
    conn: &Connection,
    since_ms: Option<i64>,
    subject: Option<&str>,
    limit: i64,
) -> rusqlite::Result<Vec<Event>> {
    let mut st = conn.prepare(
        "SELECT id, at, actor, kind, subject, data FROM (
           SELECT * FROM events WHERE at >= ?1 AND (?3 IS NULL OR subject = ?3)
           ORDER BY id DESC LIMIT ?2
         ) ORDER BY id",
    )?;
    let rows = st.query_map(
        params![since_ms.unwrap_or(i64::MIN), limit, subject],
        from_row,
    )?;
    rows.collect()
}

/// Events after event `after` (about `subject`, any when None), oldest first, at most
/// 1000: what `gt log --follow` prints next.
pub fn after(conn: &Connection, after: i64, subject: Option<&str>) -> rusqlite::Result<Vec<Event>> {
    let mut st = conn.prepare_cached(
        "SELECT id, at, actor, kind, subject, data FROM events
         WHERE id > ?1 AND (?2 IS NULL OR subject = ?2) ORDER BY id LIMIT 1000",
    )?;
    let rows = st.query_map(params![after, subject], from_row)?;
    rows.collect()
}

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Event> {
    let data: String = r.get(5)?;
    Ok(Event {
        id: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        kind: r.get(3)?,
        subject: r.get(4)?,
        data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
    })
}

/// The newest event's id (0 for an empty log).
pub fn max_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
}
