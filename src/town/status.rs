//! `gt status` (the town at a glance) and `gt log` (the event log).

use super::Town;
use crate::error::Result;
use crate::state::{agents, beads, events, rigs};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct Status {
    pub town: String,
    pub town_id: String,
    pub rigs: Vec<RigStatus>,
    /// Set while the circuit breaker pauses new dispatches.
    pub breaker_open: bool,
    /// Drains in force (`gt drain`, `gt stop`): nothing is dispatched in their scope.
    pub drains: Vec<super::drain::Drain>,
    /// Unread messages in the mayor's inbox: done notices and escalations.
    pub mayor_unread: i64,
    /// Whether patrol is doing its job: nothing recovers dead agents or hands finished
    /// work over without it.
    pub patrol: PatrolHealth,
    /// Slings that stopped between claim and start (gt killed) past the spawn timeout:
    /// the next patrol pass adopts their containers or undoes them.
    pub stopped_slings: Vec<String>,
    /// Running agents not heard from (no checkpoint, mail or done) within
    /// `patrol.quiet_after`: "RIG/NAME on BEAD: quiet for 45m". Stalled ones (no output
    /// either, `patrol.stall_timeout`) are nudged, then stopped, by patrol.
    pub quiet: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PatrolHealth {
    /// When the last pass finished (epoch ms); null when no pass ever finished.
    pub last_pass: Option<i64>,
    /// A pass holds the lease right now.
    pub running: bool,
    /// Set when work waits on a patrol that has not finished a pass within
    /// `patrol.stale_after`: what is at stake and what to do.
    pub warning: Option<String>,
}

pub fn patrol_health(town: &Town) -> Result<PatrolHealth> {
    use rusqlite::OptionalExtension;
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    let now = crate::util::now_ms();
    let last_pass: Option<i64> = conn
        .query_row(
            "SELECT at FROM events WHERE subject = 'patrol' AND kind = 'patrol.finished'
             ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(err)?;
    let running = conn
        .query_row(
            "SELECT expires_at > ?1 FROM leases WHERE name = 'patrol'",
            [now],
            |r| r.get(0),
        )
        .optional()
        .map_err(err)?
        .unwrap_or(false);
    // Work that only a patrol moves on: live or dead agents, hand-overs, queued beads.
    let waiting: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM agents WHERE state IN ('spawning', 'running', 'finishing', 'dead'))
                  + (SELECT count(*) FROM beads WHERE status = 'open' AND queued_at IS NOT NULL)",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    let stale = crate::util::millis(town.config.patrol.stale_after);
    let warning = match last_pass {
        _ if running || waiting == 0 => None,
        None => Some(
            "patrol has never run: dead agents are not recovered and finished work is not \
             handed over until it does; run `gt patrol` from cron (see README) or `gt patrol --watch`"
                .to_string(),
        ),
        Some(at) if now - at > stale => Some(format!(
            "the last patrol pass finished {} ago: is cron still running `gt patrol`?",
            crate::util::format_span(now - at)
        )),
        Some(_) => None,
    };
    Ok(PatrolHealth {
        last_pass,
        running,
        warning,
    })
}

#[derive(Debug, Serialize)]
pub struct RigStatus {
    pub name: String,
    pub max_polecats: i64,
    pub beads: BTreeMap<String, i64>,
    pub queued: i64,
    pub agents: BTreeMap<String, i64>,
}

pub fn status(town: &Town) -> Result<Status> {
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    let mut by_rig: BTreeMap<String, RigStatus> = rigs::all(conn)
        .map_err(err)?
        .into_iter()
        .map(|r| {
            let s = RigStatus {
                name: r.name.clone(),
                max_polecats: r.max_polecats,
                beads: beads::STATUSES.iter().map(|s| (s.to_string(), 0)).collect(),
                queued: 0,
                agents: BTreeMap::new(),
            };
            (r.name, s)
        })
        .collect();
    for (rig, status, n) in beads::counts(conn).map_err(err)? {
        if let Some(r) = by_rig.get_mut(&rig) {
            r.beads.insert(status, n);
        }
    }
    for (rig, n) in beads::queued_counts(conn).map_err(err)? {
        if let Some(r) = by_rig.get_mut(&rig) {
            r.queued = n;
        }
    }
    for (rig, state, n) in agents::counts(conn).map_err(err)? {
        if let Some(r) = by_rig.get_mut(&rig) {
            r.agents.insert(state, n);
        }
    }
    let breaker_open = crate::state::breaker_open(conn).map_err(err)?;
    let mayor_unread = conn
        .query_row(
            "SELECT count(*) FROM mail WHERE recipient = 'mayor' AND read_at IS NULL",
            [],
            |r| r.get(0),
        )
        .map_err(err)?;
    let now = crate::util::now_ms();
    let stopped_slings = agents::list(conn, None)
        .map_err(err)?
        .into_iter()
        .filter(|a| a.state == "spawning" && super::patrol::spawn_overdue(town, a, now))
        .map(|a| a.id)
        .collect();
    let quiet = super::patrol::quiet_agents(town, now)?
        .iter()
        .map(super::patrol::Quiet::line)
        .collect();
    Ok(Status {
        patrol: patrol_health(town)?,
        stopped_slings,
        quiet,
        mayor_unread,
        town: town.root.display().to_string(),
        town_id: town.id.clone(),
        rigs: by_rig.into_values().collect(),
        breaker_open,
        drains: super::drain::all(conn).map_err(err)?,
    })
}

pub fn log(
    town: &Town,
    since_ms: Option<i64>,
    subject: Option<&str>,
    limit: i64,
) -> Result<Vec<events::Event>> {
    events::since(town.db.conn(), since_ms, subject, limit).map_err(|e| town.db_err(e))
}

/// Events after event `after_id`, for `gt log --follow`.
pub fn log_after(town: &Town, after_id: i64, subject: Option<&str>) -> Result<Vec<events::Event>> {
    events::after(town.db.conn(), after_id, subject).map_err(|e| town.db_err(e))
}

/// The newest event's id: where `gt log --follow` starts watching.
pub fn log_mark(town: &Town) -> Result<i64> {
    events::max_id(town.db.conn()).map_err(|e| town.db_err(e))
}
