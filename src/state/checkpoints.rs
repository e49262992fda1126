//! Checkpoints: an agent's notes of progress (step `note`) and the done saga's steps.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub dispatch: i64,
    pub step: String,
    pub note: Option<String>,
    pub head: Option<String>,
    pub at: i64,
}

pub fn insert(
    conn: &Connection,
    dispatch: i64,
    bead: &str,
    step: &str,
    note: Option<&str>,
    head: Option<&str>,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO checkpoints (dispatch, bead, step, note, head, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO NOTHING",
        params![dispatch, bead, step, note, head, now],
    )?;
    Ok(n == 1)
}

pub fn step(conn: &Connection, dispatch: i64, step: &str) -> rusqlite::Result<Option<Checkpoint>> {
    conn.query_row(
        "SELECT dispatch, step, note, head, created_at FROM checkpoints WHERE dispatch = ?1 AND step = ?2
         ORDER BY id DESC LIMIT 1",
        params![dispatch, step],
        |r| Ok(Checkpoint { dispatch: r.get(0)?, step: r.get(1)?, note: r.get(2)?, head: r.get(3)?, at: r.get(4)? }),
    )
    .optional()
}

pub fn for_dispatch(conn: &Connection, dispatch: i64) -> rusqlite::Result<Vec<Checkpoint>> {
    let mut st = conn.prepare_cached(
        "SELECT dispatch, step, note, head, created_at FROM checkpoints WHERE dispatch = ?1 ORDER BY id",
    )?;
    st.query_map([dispatch], |r| {
        Ok(Checkpoint {
            dispatch: r.get(0)?,
            step: r.get(1)?,
            note: r.get(2)?,
            head: r.get(3)?,
            at: r.get(4)?,
        })
    })?
    .collect()
}
