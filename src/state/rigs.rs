//! Rigs: a project (git repository) with its agent image and limits.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rig {
    pub name: String,
    pub source: String,
    pub remote: Option<String>,
    pub default_branch: String,
    pub image: String,
    pub command: String,
    pub memory: i64,
    pub cpus: f64,
    pub pids: i64,
    /// The agents' Docker network mode: `default` (the engine's), `none`, or a network.
    pub network: String,
    pub max_polecats: i64,
    pub created_at: i64,
    pub version: i64,
}

const COLS: &str = "name, source, remote, default_branch, image, command, memory, cpus, pids, network, \
                    max_polecats, created_at, version";

fn from_row(r: &Row) -> rusqlite::Result<Rig> {
    Ok(Rig {
        name: r.get(0)?,
        source: r.get(1)?,
        remote: r.get(2)?,
        default_branch: r.get(3)?,
        image: r.get(4)?,
        command: r.get(5)?,
        memory: r.get(6)?,
        cpus: r.get(7)?,
        pids: r.get(8)?,
        network: r.get(9)?,
        max_polecats: r.get(10)?,
        created_at: r.get(11)?,
        version: r.get(12)?,
    })
}

pub fn get(conn: &Connection, name: &str) -> rusqlite::Result<Option<Rig>> {
    conn.query_row(
        &format!("SELECT {COLS} FROM rigs WHERE name = ?1"),
        [name],
        from_row,
    )
    .optional()
}

pub fn all(conn: &Connection) -> rusqlite::Result<Vec<Rig>> {
    let mut st = conn.prepare_cached(&format!("SELECT {COLS} FROM rigs ORDER BY name"))?;
    st.query_map([], from_row)?.collect()
}

pub fn insert(conn: &Connection, rig: &Rig) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO rigs ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        params![
            rig.name,
            rig.source,
            rig.remote,
            rig.default_branch,
            rig.image,
            rig.command,
            rig.memory,
            rig.cpus,
            rig.pids,
            rig.network,
            rig.max_polecats,
            rig.created_at,
            rig.version
        ],
    )?;
    Ok(())
}

/// Delete a rig and every row that belongs to it, children first. Returns counts.
pub fn delete_cascade(conn: &Connection, name: &str) -> rusqlite::Result<(usize, usize)> {
    let in_rig = "(SELECT id FROM beads WHERE rig = ?1)";
    conn.execute(
        &format!("DELETE FROM checkpoints WHERE bead IN {in_rig}"),
        [name],
    )?;
    conn.execute(
        &format!("DELETE FROM merge_requests WHERE bead IN {in_rig}"),
        [name],
    )?;
    conn.execute(
        &format!("DELETE FROM convoy_beads WHERE bead IN {in_rig}"),
        [name],
    )?;
    conn.execute("UPDATE agents SET bead = NULL WHERE rig = ?1", [name])?;
    conn.execute(
        &format!("DELETE FROM dispatches WHERE bead IN {in_rig}"),
        [name],
    )?;
    let agents = conn.execute("DELETE FROM agents WHERE rig = ?1", [name])?;
    let beads = conn.execute("DELETE FROM beads WHERE rig = ?1", [name])?;
    conn.execute("DELETE FROM rigs WHERE name = ?1", [name])?;
    Ok((beads, agents))
}
