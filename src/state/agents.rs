//! Agents (polecats): one row per worker of a rig, with its current dispatch.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Agent {
    pub id: String,
    pub rig: String,
    pub name: String,
    pub state: String,
    pub bead: Option<String>,
    pub branch: Option<String>,
    pub worktree: Option<String>,
    pub generation: i64,
    pub dispatch: Option<i64>,
    pub updated_at: i64,
    pub version: i64,
}

const COLS: &str =
    "id, rig, name, state, bead, branch, worktree, generation, dispatch, updated_at, version";

fn from_row(r: &Row) -> rusqlite::Result<Agent> {
    Ok(Agent {
        id: r.get(0)?,
        rig: r.get(1)?,
        name: r.get(2)?,
        state: r.get(3)?,
        bead: r.get(4)?,
        branch: r.get(5)?,
        worktree: r.get(6)?,
        generation: r.get(7)?,
        dispatch: r.get(8)?,
        updated_at: r.get(9)?,
        version: r.get(10)?,
    })
}

/// The git author email of a polecat's commits, inside its container and by gt alike.
pub fn email(rig: &str, name: &str) -> String {
    format!("{name}@{rig}.gt")
}

pub fn id(rig: &str, name: &str) -> String {
    format!("{rig}/{name}")
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Agent>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM agents WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

pub fn list(conn: &Connection, rig: Option<&str>) -> rusqlite::Result<Vec<Agent>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM agents WHERE (?1 IS NULL OR rig = ?1) ORDER BY rig, name"
    ))?;
    st.query_map(params![rig], from_row)?.collect()
}

/// The agent that holds `bead`, if any.
pub fn holding(conn: &Connection, bead: &str) -> rusqlite::Result<Option<Agent>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM agents WHERE bead = ?1"),
        [bead],
        from_row,
    )
    .optional()
}

/// The agent whose branch is `branch` in `rig`, if any.
pub fn on_branch(conn: &Connection, rig: &str, branch: &str) -> rusqlite::Result<Option<Agent>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM agents WHERE rig = ?1 AND branch = ?2"),
        [rig, branch],
        from_row,
    )
    .optional()
}

/// Agents of `rig` that hold a container slot.
pub fn live_count(conn: &Connection, rig: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM agents WHERE rig = ?1 AND state IN ('spawning','running','finishing')",
        [rig],
        |r| r.get(0),
    )
}

/// An idle polecat of the rig (no bead), preferring the named one.
pub fn idle(conn: &Connection, rig: &str, name: Option<&str>) -> rusqlite::Result<Option<Agent>> {
    conn.query_row(
        &format!(
            "SELECT {COLS} FROM agents WHERE rig = ?1 AND bead IS NULL AND state = 'idle'
             AND (?2 IS NULL OR name = ?2) ORDER BY name LIMIT 1"
        ),
        params![rig, name],
        from_row,
    )
    .optional()
}

pub fn names(conn: &Connection, rig: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT name FROM agents WHERE rig = ?1")?;
    st.query_map([rig], |r| r.get(0))?.collect()
}

pub fn insert(conn: &Connection, rig: &str, name: &str, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO agents (id, rig, name, state, generation, updated_at) VALUES (?1, ?2, ?3, 'idle', 0, ?4)",
        params![id(rig, name), rig, name, now],
    )?;
    Ok(())
}

/// Per-rig count of agents in each state, for `gt status`.
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT rig, state, count(*) FROM agents GROUP BY rig, state ORDER BY rig, state",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// Polecat names, after Gas Town's (and Mad Max's) crew. Past the pool: `polecat-N`.
pub const NAME_POOL: &[&str] = &[
    "furiosa",
    "nux",
    "slit",
    "rictus",
    "toast",
    "capable",
    "cheedo",
    "dag",
    "angharad",
    "ace",
    "keeper",
    "valkyrie",
    "morsov",
    "max",
    "jack",
    "dementus",
    "praetorian",
    "scrotus",
    "corpus",
    "doof",
    "glory",
    "miss-giddy",
    "bullet",
    "organic",
    "vuvalini",
    "imperator",
    "warboy",
    "gastown",
    "citadel",
    "wretched",
    "buzzard",
    "rockrider",
    "peoneer",
    "mechanic",
    "lifeline",
    "guzzoline",
    "aqua-cola",
    "fang",
    "rigger",
    "splendid",
];

/// The first pool name the rig does not use yet.
pub fn fresh_name(conn: &Connection, rig: &str) -> rusqlite::Result<String> {
    let used = names(conn, rig)?;
    let from_pool = NAME_POOL
        .iter()
        .find(|n| !used.iter().any(|u| u == *n))
        .map(|n| n.to_string());
    Ok(from_pool.unwrap_or_else(|| {
        (1..)
            .map(|i| format!("polecat-{i}"))
            .find(|n| !used.contains(n))
            .unwrap_or_default()
    }))
}

/// Agent → `idle` (bead, branch and worktree cleared), or → `nuked` still holding its
/// branch and a kept worktree; only while it is at `generation`. True when it moved.
pub fn release(
    conn: &Connection,
    id: &str,
    generation: i64,
    keep_worktree: bool,
    now: i64,
) -> rusqlite::Result<bool> {
    let sql = if keep_worktree {
        "UPDATE agents SET state = 'nuked', bead = NULL, updated_at = ?3, version = version + 1
         WHERE id = ?1 AND generation = ?2"
    } else {
        "UPDATE agents SET state = 'idle', bead = NULL, branch = NULL, worktree = NULL, updated_at = ?3,
         version = version + 1 WHERE id = ?1 AND generation = ?2"
    };
    Ok(conn.execute(sql, params![id, generation, now])? == 1)
}
