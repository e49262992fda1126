//! Dispatches: one row per container start of an agent (generation, token, how it ended).

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dispatch {
    pub id: i64,
    pub agent: String,
    pub bead: String,
    pub generation: i64,
    #[serde(skip)]
    pub token: String,
    pub branch: String,
    pub container_id: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub oom: bool,
    pub reason: Option<String>,
}

const COLS: &str = "id, agent, bead, generation, token, branch, container_id, started_at, ended_at, \
                    exit_code, oom, reason";

fn from_row(r: &Row) -> rusqlite::Result<Dispatch> {
    Ok(Dispatch {
        id: r.get(0)?,
        agent: r.get(1)?,
        bead: r.get(2)?,
        generation: r.get(3)?,
        token: r.get(4)?,
        branch: r.get(5)?,
        container_id: r.get(6)?,
        started_at: r.get(7)?,
        ended_at: r.get(8)?,
        exit_code: r.get(9)?,
        oom: r.get(10)?,
        reason: r.get(11)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> rusqlite::Result<Option<Dispatch>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM dispatches WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

/// The latest dispatch of an agent (its current one, or its last).
pub fn last_of_agent(conn: &Connection, agent: &str) -> rusqlite::Result<Option<Dispatch>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM dispatches WHERE agent = ?1 ORDER BY id DESC LIMIT 1"),
        [agent],
        from_row,
    )
    .optional()
}

/// The dispatch of `agent` at `generation`, if there was one.
pub fn for_agent_generation(
    conn: &Connection,
    agent: &str,
    generation: i64,
) -> rusqlite::Result<Option<Dispatch>> {
    conn.query_row(
        &format!(
            "SELECT {COLS} FROM dispatches WHERE agent = ?1 AND generation = ?2 ORDER BY id DESC LIMIT 1"
        ),
        params![agent, generation],
        from_row,
    )
    .optional()
}

pub fn for_bead(conn: &Connection, bead: &str) -> rusqlite::Result<Vec<Dispatch>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM dispatches WHERE bead = ?1 ORDER BY id"
    ))?;
    st.query_map([bead], from_row)?.collect()
}

#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &Connection,
    agent: &str,
    bead: &str,
    generation: i64,
    token: &str,
    branch: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO dispatches (agent, bead, generation, token, branch, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![agent, bead, generation, token, branch, now],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn set_container(conn: &Connection, id: i64, container_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE dispatches SET container_id = ?2 WHERE id = ?1",
        params![id, container_id],
    )?;
    Ok(())
}

/// Record how a dispatch ended; the first ending recorded wins.
pub fn end(
    conn: &Connection,
    id: i64,
    now: i64,
    exit_code: Option<i64>,
    oom: bool,
    reason: &str,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE dispatches SET ended_at = ?2, exit_code = ?3, oom = ?4, reason = ?5
         WHERE id = ?1 AND ended_at IS NULL",
        params![id, now, exit_code, oom, reason],
    )?;
    Ok(n == 1)
}

/// When the agent of dispatch `id` was last heard from: its latest applied request
/// (checkpoint, mail, done, …), else the dispatch's start.
pub fn last_heard(conn: &Connection, id: i64) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(d.started_at, coalesce((SELECT max(applied_at) FROM requests WHERE dispatch = d.id), 0))
         FROM dispatches d WHERE d.id = ?1",
        [id],
        |r| r.get(0),
    )
}
