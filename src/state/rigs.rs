//! Rigs: a project (git repository) with its agent image and limits.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// The agent preset the rig was set up with: `claude`, `codex` or `custom`.
    pub agent: String,
    /// Non-secret environment of the agent command (container env).
    pub env: BTreeMap<String, String>,
    /// Names of the town secrets its agents get as files under /gt-secrets (never values).
    pub secrets: Vec<String>,
    /// Landing policy of its merge requests: `review`, `auto` or `off`.
    pub merge: String,
    /// The gate: a shell command run on each candidate in a container; none: no gate.
    pub test_command: Option<String>,
    /// How a change lands: `merge`, `squash` or `rebase`.
    pub merge_style: String,
    /// The gate gets the rig's secrets too (off by default).
    pub gate_secrets: bool,
    /// Done notices of this rig are folded into one digest mail per patrol pass.
    pub digest: bool,
    /// Swarm placement constraints of its agents (and gates); empty: any node.
    pub placement: Vec<String>,
}

const COLS: &str = "name, source, remote, default_branch, image, command, memory, cpus, pids, network, \
                    max_polecats, created_at, version, agent, env, secrets, merge, test_command, \
                    merge_style, gate_secrets, digest, placement";

/// A JSON column, parsed; a malformed value is a conversion error naming the column.
fn json_col<T: serde::de::DeserializeOwned>(r: &Row, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The `env` column's text for `env`.
pub fn env_json(env: &BTreeMap<String, String>) -> String {
    serde_json::to_string(env).unwrap_or_else(|_| "{}".into())
}

/// The `secrets` column's text for `names`.
pub fn secrets_json(names: &[String]) -> String {
    serde_json::to_string(names).unwrap_or_else(|_| "[]".into())
}

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
        agent: r.get(13)?,
        env: json_col(r, 14)?,
        secrets: json_col(r, 15)?,
        merge: r.get(16)?,
        test_command: r.get(17)?,
        merge_style: r.get(18)?,
        gate_secrets: r.get(19)?,
        digest: r.get(20)?,
        placement: json_col(r, 21)?,
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
            "INSERT INTO rigs ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)"
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
            rig.version,
            rig.agent,
            env_json(&rig.env),
            secrets_json(&rig.secrets),
            rig.merge,
            rig.test_command,
            rig.merge_style,
            rig.gate_secrets,
            rig.digest,
            secrets_json(&rig.placement)
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
