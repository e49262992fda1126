//! `gt status` (the town at a glance) and `gt log` (the event log).

use super::Town;
use crate::error::Result;
use crate::runtime::{LABEL_RIG, Observed, RunState, Runtime};
use crate::state::{Tx, agents, beads, events, rigs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct Status {
    pub town: String,
    pub town_id: String,
    /// Whether the container engine answered just now. When it did not, agent states are
    /// as last recorded: nothing checked that their containers still run.
    pub engine: Engine,
    pub rigs: Vec<RigStatus>,
    /// Set while the circuit breaker pauses new dispatches.
    pub breaker_open: bool,
    /// Drains in force (`gt drain`, `gt stop`): nothing is dispatched in their scope.
    pub drains: Vec<super::drain::Drain>,
    /// Unread messages in the mayor's inbox: done notices and escalations.
    pub mayor_unread: i64,
    /// How many of those are escalations (`gt mail inbox --unread --kind escalation`).
    pub mayor_unread_escalations: i64,
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
    /// Rigs whose remote keeps refusing (or not answering) their hand-overs' pushes:
    /// "RIG: pushing to URL failed N time(s) in a row, …; next try after T".
    pub remotes_failing: Vec<String>,
}

/// How long read commands wait for the engine to answer (at most
/// `patrol.engine_timeout`): a hung engine costs `gt status` seconds, not a minute.
pub const ENGINE_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The container engine as a read command saw it, with one list call.
#[derive(Debug, Serialize)]
pub struct Engine {
    /// The engine answered within the probe's timeout.
    pub answers: bool,
    /// Why it did not answer.
    pub error: Option<String>,
    /// This town's containers running now; null when the engine did not answer.
    pub containers_running: Option<usize>,
    /// This town's containers (running or not); empty when the engine did not answer.
    #[serde(skip)]
    pub containers: Vec<Observed>,
}

impl Engine {
    /// The state of `rig/name`'s container of `generation`: running, exited, created,
    /// other or absent; None when the engine did not answer.
    pub fn container_state(&self, rig: &str, name: &str, generation: i64) -> Option<&'static str> {
        if !self.answers {
            return None;
        }
        let c = self.container(rig, name, generation);
        Some(match c.map(|c| c.state) {
            None => "absent",
            Some(RunState::Running) => "running",
            Some(RunState::Exited) => "exited",
            Some(RunState::Created) => "created",
            Some(RunState::Other) => "other",
        })
    }

    /// The container of `rig/name` at `generation`, as the engine last answered.
    pub fn container(&self, rig: &str, name: &str, generation: i64) -> Option<&Observed> {
        self.containers.iter().find(|c| {
            c.labels.get(LABEL_RIG).map(String::as_str) == Some(rig)
                && c.labels
                    .get(crate::runtime::LABEL_AGENT)
                    .map(String::as_str)
                    == Some(name)
                && c.generation() == Some(generation)
        })
    }

    fn running_in(&self, rig: &str) -> Option<i64> {
        self.answers.then(|| {
            self.containers
                .iter()
                .filter(|c| {
                    c.state == RunState::Running
                        && c.labels.get(LABEL_RIG).map(String::as_str) == Some(rig)
                })
                .count() as i64
        })
    }
}

/// Ask the engine (through `connect`, which should give up within
/// [`ENGINE_PROBE_TIMEOUT`]) for this town's containers. Never fails: an engine that does
/// not answer is a finding, not an error of the command that asked.
pub fn engine(town: &Town, connect: &dyn Fn() -> Result<Box<dyn Runtime>>) -> Engine {
    match connect().and_then(|rt| rt.list(&town.id)) {
        Ok(containers) => Engine {
            answers: true,
            error: None,
            containers_running: Some(
                containers
                    .iter()
                    .filter(|c| c.state == RunState::Running)
                    .count(),
            ),
            containers,
        },
        Err(e) => Engine {
            answers: false,
            error: Some(e.to_string()),
            containers_running: None,
            containers: Vec::new(),
        },
    }
}

/// What one successful patrol pass found and did, in counts (the pass's `--json`
/// report has the names).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Found {
    pub ingested: usize,
    pub rejected: usize,
    pub done: usize,
    pub deaths: usize,
    pub redispatched: usize,
    pub gave_up: usize,
    pub dispatched: usize,
    pub orphans_removed: usize,
    pub quiet: usize,
    pub stalled: usize,
    /// Agents of drained rigs stopped and parked.
    pub drained: usize,
    /// Merge requests landed, and sent back to their beads.
    pub merged: usize,
    pub returned: usize,
    pub errors: usize,
}

impl Found {
    pub fn of(r: &super::patrol::Report) -> Found {
        Found {
            ingested: r.ingested,
            rejected: r.rejected,
            done: r.sagas_finished.len(),
            deaths: r.deaths.len(),
            redispatched: r.redispatched.len(),
            gave_up: r.exhausted.len(),
            dispatched: r.queued_dispatched.len(),
            orphans_removed: r.orphans_removed.len(),
            quiet: r.quiet.len(),
            stalled: r.stalled.len(),
            drained: r.drained.len(),
            merged: r.merge_queue.merged.len(),
            returned: r.merge_queue.returned.len(),
            errors: r.errors.len() + r.merge_queue.errors.len(),
        }
    }

    /// "2 done, 1 died, 1 re-dispatched", or "nothing to do".
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            (self.done, "done"),
            (self.deaths, "died"),
            (self.redispatched, "re-dispatched"),
            (self.gave_up, "given up"),
            (self.dispatched, "dispatched from the queue"),
            (self.orphans_removed, "orphan container(s) removed"),
            (self.stalled, "stalled"),
            (self.drained, "stopped by a drain"),
            (self.merged, "merged"),
            (self.returned, "sent back"),
            (self.quiet, "quiet"),
            (self.rejected, "request(s) rejected"),
            (self.errors, "error(s)"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            "nothing to do".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Record that the pass holding fencing token `fence` got through every step, and what
/// it found: `gt status` and `gt doctor` tell a patrol that runs from one that only
/// starts (and fails) from it.
pub fn record_pass(tx: &mut Tx, fence: Option<i64>, found: &Found) -> Result<()> {
    tx.event(
        "patrol.succeeded",
        "patrol",
        serde_json::json!({ "fence": fence, "found": found }),
    )
}

#[derive(Debug, Serialize)]
pub struct PatrolHealth {
    /// When the last pass finished, successfully or not (epoch ms); null when no pass
    /// ever finished.
    pub last_pass: Option<i64>,
    /// When the last pass that got through every step finished (epoch ms).
    pub last_success: Option<i64>,
    /// What that pass found and did.
    pub found: Option<Found>,
    /// The latest pass did not get through (Docker unreachable, an error): `failure`
    /// says why when known.
    pub last_pass_failed: bool,
    pub failure: Option<String>,
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
    let latest = |kind: &str| -> Result<Option<(i64, serde_json::Value)>> {
        conn.query_row(
            "SELECT at, data FROM events WHERE subject = 'patrol' AND kind = ?1
             ORDER BY id DESC LIMIT 1",
            [kind],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
        .map(|row| row.map(|(at, data)| (at, serde_json::from_str(&data).unwrap_or_default())))
        .map_err(err)
    };
    let last_pass = latest("patrol.finished")?.map(|(at, _)| at);
    let success = latest("patrol.succeeded")?;
    let last_success = success.as_ref().map(|(at, _)| *at);
    let found = success
        .as_ref()
        .and_then(|(_, d)| serde_json::from_value(d["found"].clone()).ok());
    // The latest pass that took the lease is the one that succeeded, or it failed.
    let last_token = latest("patrol.started")?.and_then(|(_, d)| d["token"].as_i64());
    let last_pass_failed = last_pass.is_some()
        && last_token.is_some()
        && last_token != success.as_ref().and_then(|(_, d)| d["fence"].as_i64());
    let failure = if last_pass_failed {
        let down: Option<(String, String)> = conn
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'runtime_down_since'),
                        (SELECT value FROM meta WHERE key = 'runtime_down_passes')",
                [],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                    ))
                },
            )
            .map(|(a, b)| a.zip(b))
            .map_err(err)?;
        Some(match down {
            Some((since, passes)) => match since.parse::<i64>() {
                Ok(at) => format!(
                    "Docker unreachable for {passes} pass(es), down for {}",
                    crate::util::format_span(now - at)
                ),
                Err(_) => format!("Docker unreachable for {passes} pass(es)"),
            },
            None => "it stopped with an error (run `gt patrol` to see it)".to_string(),
        })
    } else {
        None
    };
    let running = crate::state::patrol_lease_live(conn, now).map_err(err)?;
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
    let warning = match last_success {
        _ if running || waiting == 0 => None,
        None => Some(
            "patrol has never run: dead agents are not recovered and finished work is not \
             handed over until it does; run `gt patrol` from cron (see README) or `gt patrol --watch`"
                .to_string(),
        ),
        Some(at) if now - at > stale => Some(format!(
            "the last successful patrol pass finished {} ago: is cron still running `gt patrol`? \
             (`gt patrol install` sets it up)",
            crate::util::format_span(now - at)
        )),
        Some(_) => None,
    };
    Ok(PatrolHealth {
        last_pass,
        last_success,
        found,
        last_pass_failed,
        failure,
        running,
        warning,
    })
}

#[derive(Debug, Serialize)]
pub struct RigStatus {
    pub name: String,
    pub max_polecats: i64,
    /// Beads by status. `open` includes the queued ones (`queued`).
    pub beads: BTreeMap<String, i64>,
    /// Open beads not slung (`gt sling` starts them): `beads.open` less `queued`, as
    /// `gt top` counts them.
    pub open: i64,
    /// Open beads waiting in the queue for a free polecat (patrol dispatches them).
    pub queued: i64,
    /// Agents by state, as recorded.
    pub agents: BTreeMap<String, i64>,
    /// This rig's containers the engine says are running now; null when it did not answer.
    pub containers_running: Option<i64>,
}

pub fn status(town: &Town, engine: Engine) -> Result<Status> {
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
                open: 0,
                queued: 0,
                agents: BTreeMap::new(),
                containers_running: engine.running_in(&r.name),
            };
            (r.name, s)
        })
        .collect();
    for (rig, status, n) in beads::counts(conn).map_err(err)? {
        if let Some(r) = by_rig.get_mut(&rig) {
            r.beads.insert(status, n);
        }
    }
    for (rig, (open, queued)) in open_and_queued(town)? {
        if let Some(r) = by_rig.get_mut(&rig) {
            r.open = open;
            r.queued = queued;
        }
    }
    for (rig, state, n) in agents::counts(conn).map_err(err)? {
        if let Some(r) = by_rig.get_mut(&rig) {
            r.agents.insert(state, n);
        }
    }
    let breaker_open = crate::state::breaker_open(conn).map_err(err)?;
    let (mayor_unread, mayor_unread_escalations) = conn
        .query_row(
            "SELECT count(*), count(*) FILTER (WHERE substr(subject, 1, 12) = '[escalation]')
             FROM mail WHERE recipient = 'mayor' AND read_at IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
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
    let mut remotes_failing = Vec::new();
    for r in rigs::all(conn).map_err(err)? {
        if let (Some(remote), Some(b)) = (&r.remote, super::done::push_backoff(town, &r.name)?) {
            remotes_failing.push(format!("{}: {}", r.name, b.why(remote)));
        }
    }
    Ok(Status {
        remotes_failing,
        engine,
        patrol: patrol_health(town)?,
        stopped_slings,
        quiet,
        mayor_unread,
        mayor_unread_escalations,
        town: town.root.display().to_string(),
        town_id: town.id.clone(),
        rigs: by_rig.into_values().collect(),
        breaker_open,
        drains: super::drain::all(conn).map_err(err)?,
    })
}

/// Per rig, its open beads in two counts that never overlap: those not slung, and
/// those queued for a free polecat. `gt status` and `gt top` both count with it.
pub fn open_and_queued(town: &Town) -> Result<BTreeMap<String, (i64, i64)>> {
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (rig, status, n) in beads::counts(conn).map_err(err)? {
        if status == "open" {
            out.entry(rig).or_default().0 = n;
        }
    }
    for (rig, n) in beads::queued_counts(conn).map_err(err)? {
        let e = out.entry(rig).or_default();
        e.0 -= n;
        e.1 = n;
    }
    Ok(out)
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
