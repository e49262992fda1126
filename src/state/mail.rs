//! Mail: durable messages; the id is the idempotency key.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mail {
    pub id: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub sent: i64,
    #[serde(default)]
    pub delivered: Option<i64>,
    #[serde(default)]
    pub read: Option<i64>,
    #[serde(default)]
    pub acked: Option<i64>,
    /// For one dispatch of its recipient, that generation's (a drain's "stop for now", a
    /// nudge): it ends with that dispatch, and no later one sees it. None: for the
    /// polecat, whatever it works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

impl Mail {
    /// A new, undelivered, unread message.
    pub fn new(
        id: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        subject: impl Into<String>,
        body: impl Into<String>,
        sent: i64,
    ) -> Mail {
        Mail {
            id: id.into(),
            from: from.into(),
            to: to.into(),
            subject: subject.into(),
            body: body.into(),
            sent,
            delivered: None,
            read: None,
            acked: None,
            generation: None,
        }
    }

    /// Addressed to the dispatch of generation `generation` of its recipient only.
    pub fn for_generation(mut self, generation: i64) -> Mail {
        self.generation = Some(generation);
        self
    }
}

const COLS: &str =
    "id, sender, recipient, subject, body, sent_at, delivered_at, read_at, acked_at, generation";

fn from_row(r: &Row) -> rusqlite::Result<Mail> {
    Ok(Mail {
        id: r.get(0)?,
        from: r.get(1)?,
        to: r.get(2)?,
        subject: r.get(3)?,
        body: r.get(4)?,
        sent: r.get(5)?,
        delivered: r.get(6)?,
        read: r.get(7)?,
        acked: r.get(8)?,
        generation: r.get(9)?,
    })
}

/// Store a message unless one with this id exists. True when it was new.
pub fn insert(conn: &Connection, m: &Mail) -> rusqlite::Result<bool> {
    let n = conn.execute(
        &format!("INSERT INTO mail ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, NULL, NULL, ?7) ON CONFLICT(id) DO NOTHING"),
        params![m.id, m.from, m.to, m.subject, m.body, m.sent, m.generation],
    )?;
    Ok(n == 1)
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Mail>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM mail WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
}

pub fn inbox(conn: &Connection, to: &str, unread_only: bool) -> rusqlite::Result<Vec<Mail>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM mail WHERE recipient = ?1 AND (?2 = 0 OR read_at IS NULL) ORDER BY sent_at, id"
    ))?;
    st.query_map(params![to, unread_only], from_row)?.collect()
}

/// Mail addressed to agents and not yet written into their inbox (but for mail of a
/// dispatch that ended first: it expired undelivered).
pub fn undelivered(conn: &Connection) -> rusqlite::Result<Vec<Mail>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM mail WHERE delivered_at IS NULL AND recipient LIKE '%/%'
           AND NOT (generation IS NOT NULL AND acked_at IS NOT NULL) ORDER BY sent_at, id"
    ))?;
    st.query_map([], from_row)?.collect()
}

pub fn mark(conn: &Connection, id: &str, column: &str, now: i64) -> rusqlite::Result<bool> {
    debug_assert!(matches!(column, "delivered_at" | "read_at" | "acked_at"));
    let n = conn.execute(
        &format!("UPDATE mail SET {column} = ?2 WHERE id = ?1 AND {column} IS NULL"),
        params![id, now],
    )?;
    Ok(n == 1)
}

/// Messages from `from` in `to`'s inbox that `to` has not read.
pub fn unread_from(conn: &Connection, from: &str, to: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM mail WHERE recipient = ?1 AND sender = ?2 AND read_at IS NULL",
        params![to, from],
        |r| r.get(0),
    )
}

/// (id, recipient) of every message for one dispatch of an agent whose dispatch has
/// ended (the agent moved to a later generation, or is no longer working) and that is
/// not acknowledged yet.
pub fn of_ended_dispatches(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT m.id, m.recipient FROM mail m JOIN agents a ON a.id = m.recipient
          WHERE m.generation IS NOT NULL AND m.acked_at IS NULL
            AND (m.generation < a.generation
                 OR a.state NOT IN ('spawning', 'running', 'finishing'))
          ORDER BY m.sent_at, m.id",
    )?;
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}
