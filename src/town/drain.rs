//! Drains: a scope (`*`, the whole town, or one rig) where nothing is dispatched until
//! `gt resume`. `gt drain` asks the working agents to checkpoint and stop, waits, then
//! stops the rest with their work committed; `gt stop` does that at once. Each stopped
//! bead goes back to `open` (queued, on its branch, the attempt not counted); patrol
//! finishes a drain whose `gt drain` was killed, and honours it in every path.

use super::{HUMAN, Town, mail::MAYOR};
use crate::error::{Error, Result};
use crate::runtime::{LABEL_AGENT, LABEL_RIG, Observed, RunState, Runtime};
use crate::state::{Tx, agents, dispatches, mail::Mail};
use crate::util::{format_span, now_ms};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The scope of a whole-town drain.
pub const TOWN: &str = "*";

/// The file in an agent's mailbox (`/gt/stop.json` inside its container) that tells
/// `gt agent run` its generation is being stopped: it commits what is left uncommitted,
/// as the agent, when the agent command ends.
pub const STOP_FILE: &str = "stop.json";

/// How long a stopped agent gets between SIGTERM and SIGKILL: its command ends and
/// `gt agent run` commits its work in progress.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How an agent's stop is recorded on its dispatch (and shown in `gt prime`).
const REASON: &str = "drained: stopped by `gt drain`/`gt stop`, work in progress committed on the branch; not counted as an attempt";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drain {
    /// `*` for the whole town, else a rig.
    pub scope: String,
    /// `drain` while agents are asked to stop on their own; `stop` once the remaining
    /// ones are (or are to be) stopped.
    pub mode: String,
    /// Since when (epoch ms) nothing is dispatched in the scope.
    pub since: i64,
    /// When a `drain` stops the agents still working (epoch ms).
    pub deadline: Option<i64>,
}

impl Drain {
    pub fn covers(&self, rig: &str) -> bool {
        self.scope == TOWN || self.scope == rig
    }

    /// "the whole town" or "rig api".
    pub fn what(&self) -> String {
        if self.scope == TOWN {
            "the whole town".into()
        } else {
            format!("rig {}", self.scope)
        }
    }

    fn due(&self, now: i64) -> bool {
        self.mode == "stop" || self.deadline.is_some_and(|d| now >= d)
    }
}

impl Parked {
    /// (rig, name) of its agent.
    pub fn key(&self) -> (String, String) {
        let (rig, name) = self.agent.split_once('/').unwrap_or(("", &self.agent));
        (rig.to_string(), name.to_string())
    }
}

/// What a stopped agent's marker says (host-written, read by `gt agent run`).
#[derive(Debug, Serialize, Deserialize)]
pub struct StopMarker {
    pub generation: i64,
    pub at: i64,
}

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<Drain> {
    Ok(Drain {
        scope: r.get(0)?,
        mode: r.get(1)?,
        since: r.get(2)?,
        deadline: r.get(3)?,
    })
}

/// Every drain in force, the whole town's first.
pub fn all(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Drain>> {
    let mut st = conn.prepare_cached(
        "SELECT scope, mode, since, deadline FROM drains ORDER BY scope = '*' DESC, scope",
    )?;
    st.query_map([], from_row)?.collect()
}

fn covering(conn: &rusqlite::Connection, rig: &str) -> rusqlite::Result<Option<Drain>> {
    conn.query_row(
        "SELECT scope, mode, since, deadline FROM drains WHERE scope IN ('*', ?1)
         ORDER BY scope = '*' DESC LIMIT 1",
        [rig],
        from_row,
    )
    .optional()
}

/// The drain that keeps rig `rig` from dispatching (the whole town's, else the rig's),
/// if any: the merge queue, patrol and sling ask this before starting anything.
pub fn active(town: &Town, rig: &str) -> Result<Option<Drain>> {
    covering(town.db.conn(), rig).map_err(|e| town.db_err(e))
}

/// `active`, inside a transaction (sling's claim asks it there).
pub fn active_tx(tx: &Tx, rig: &str) -> Result<Option<Drain>> {
    covering(tx, rig).map_err(|e| tx.err(e))
}

/// The error of a dispatch refused by a drain (exit code 3, as for the breaker).
pub fn refused(bead: &str, d: &Drain) -> Error {
    Error::conflict(
        format!(
            "{} is drained since {}: bead {bead} is not dispatched",
            d.what(),
            crate::util::format_time(d.since)
        ),
        Some(if d.scope == TOWN {
            "`gt resume` lifts the drain; then `gt sling` it again".to_string()
        } else {
            format!(
                "`gt resume --rig {}` lifts the drain; then `gt sling` it again",
                d.scope
            )
        }),
    )
}

/// One agent stopped by a drain: its bead is open again, queued, on its branch.
#[derive(Debug, Clone, Serialize)]
pub struct Parked {
    pub agent: String,
    pub bead: String,
    pub branch: Option<String>,
    /// True when the agent's container had ended on its own (it obeyed the drain mail,
    /// or died); false when the drain stopped it.
    pub ended_on_its_own: bool,
    /// Its worktree, kept because it still holds uncommitted work (the WIP commit could
    /// not be made: the agent did not end within its grace); None when it was removed.
    pub kept_worktree: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scope: String,
    pub mode: String,
    pub since: i64,
    pub deadline: Option<i64>,
    /// Agents mailed to checkpoint and stop ("RIG/NAME on BEAD").
    pub asked: Vec<String>,
    /// Agents that said done while the drain waited: their beads are handed over as usual.
    pub finished: Vec<String>,
    pub parked: Vec<Parked>,
    /// Agents still working when this command ended (a sling still starting, or an
    /// agent that could not be stopped): patrol stops them.
    pub still_working: Vec<String>,
    /// Why an agent could not be asked or stopped ("RIG/NAME: error").
    pub errors: Vec<String>,
    /// True when `gt resume` lifted the drain while this command waited: it stopped
    /// waiting, and stopped no agent after the resume.
    pub lifted: bool,
    #[serde(skip)]
    failed: std::collections::HashSet<String>,
}

/// Start (or tighten) a drain of `scope` (None: the whole town): nothing is dispatched
/// there from now on. `timeout` None is `gt stop` (stop at once).
pub fn begin(town: &mut Town, scope: Option<&str>, timeout: Option<Duration>) -> Result<Drain> {
    let scope = match scope {
        Some(rig) => super::rig::get(town, rig)?.name,
        None => TOWN.to_string(),
    };
    let now = now_ms();
    let (mode, deadline) = match timeout {
        Some(t) => ("drain", now + crate::util::millis(t)),
        None => ("stop", now),
    };
    town.db.write(|tx| {
        // A drain already in force keeps its start; a tighter deadline (or a stop) wins.
        tx.execute(
            "INSERT INTO drains (scope, mode, since, deadline) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(scope) DO UPDATE SET
               mode = CASE WHEN excluded.mode = 'stop' THEN 'stop' ELSE mode END,
               deadline = min(coalesce(deadline, excluded.deadline), excluded.deadline)",
            rusqlite::params![scope, mode, now, deadline],
        )
        .map_err(|e| tx.err(e))?;
        let d = tx
            .query_row(
                "SELECT scope, mode, since, deadline FROM drains WHERE scope = ?1",
                [&scope],
                from_row,
            )
            .map_err(|e| tx.err(e))?;
        tx.event(
            if mode == "stop" {
                "drain.stop"
            } else {
                "drain.started"
            },
            &scope,
            serde_json::json!({ "mode": d.mode, "since": d.since, "deadline": d.deadline }),
        )?;
        Ok(d)
    })
}

/// `gt resume [--rig R]`: lift the drain of `rig`, or every drain (None). Returns the
/// scopes lifted. The agents the drain had asked to stop and that still work (and
/// that no other drain covers) are told to carry on: the ask is withdrawn (its mail
/// acknowledged and out of their inbox, the stop marker gone) and a mail says so.
pub fn lift(town: &mut Town, rig: Option<&str>) -> Result<Vec<String>> {
    if let Some(r) = rig {
        super::rig::get(town, r)?;
    }
    let (lifted, withdrawn) = town.db.write(|tx| {
        let lifted: Vec<String> = all(tx)
            .map_err(|e| tx.err(e))?
            .into_iter()
            .map(|d| d.scope)
            .filter(|s| rig.is_none_or(|r| r == s))
            .collect();
        for s in &lifted {
            tx.execute("DELETE FROM drains WHERE scope = ?1", [s])
                .map_err(|e| tx.err(e))?;
            tx.event("drain.lifted", s, serde_json::json!({}))?;
        }
        let mut withdrawn = Vec::new();
        if lifted.is_empty() {
            return Ok((lifted, withdrawn));
        }
        let now = now_ms();
        for a in agents::list(tx, None).map_err(|e| tx.err(e))? {
            let (Some(dispatch), Some(bead)) = (a.dispatch, a.bead.as_deref()) else {
                continue;
            };
            if !matches!(a.state.as_str(), "running" | "spawning")
                || covering(tx, &a.rig).map_err(|e| tx.err(e))?.is_some()
            {
                continue;
            }
            let asked: Option<String> = tx
                .query_row(
                    "SELECT id FROM mail WHERE recipient = ?1 AND id GLOB ?2
                       AND acked_at IS NULL ORDER BY sent_at DESC LIMIT 1",
                    rusqlite::params![a.id, format!("drain-{dispatch}-*")],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| tx.err(e))?;
            let Some(id) = asked else {
                continue;
            };
            crate::state::mail::mark(tx, &id, "read_at", now).map_err(|e| tx.err(e))?;
            crate::state::mail::mark(tx, &id, "acked_at", now).map_err(|e| tx.err(e))?;
            tx.event(
                "drain.withdrawn",
                &a.id,
                serde_json::json!({ "bead": bead, "dispatch": dispatch, "mail": id }),
            )?;
            let m = Mail::new(
                format!("resumed-{}", id.trim_start_matches("drain-")),
                HUMAN,
                a.id.clone(),
                "carry on: the drain is lifted",
                format!(
                    "The drain that asked you to stop was lifted (`gt resume`). Disregard its \
                     \"stop for now\" and carry on with {bead}."
                ),
                now,
            )
            .for_generation(a.generation);
            super::mail::post(tx, &m)?;
            withdrawn.push((a, id));
        }
        Ok((lifted, withdrawn))
    })?;
    for (a, id) in &withdrawn {
        let dir = super::workspace::places(town, &a.rig, &a.name).box_dir;
        if let Ok(d) = crate::untrusted::Dir::open(&dir) {
            let _ = d.remove(STOP_FILE);
            if let Ok(inbox) = d.sub("inbox") {
                let _ = inbox.remove(&format!("{id}.json"));
            }
        }
    }
    if !withdrawn.is_empty() {
        // Stored is sent: a failed delivery is retried by patrol.
        if let Err(e) = super::mail::deliver(town) {
            tracing::warn!("delivering the carry-on mail: {e}");
        }
    }
    if !lifted.is_empty() {
        super::watch::poke(town);
    }
    Ok(lifted)
}

/// The working agents (running, or spawning: their sling started before the drain) of
/// the rigs `d` covers.
fn working(town: &Town, d: &Drain) -> Result<Vec<agents::Agent>> {
    Ok(agents::list(town.db.conn(), None)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|a| d.covers(&a.rig) && matches!(a.state.as_str(), "running" | "spawning"))
        .collect())
}

/// Ask a running agent (once per dispatch and drain) to checkpoint and stop: a mail in its
/// inbox, and the stop marker that has `gt agent run` commit its leftovers when its
/// command ends. True when it was asked now.
fn ask(town: &mut Town, a: &agents::Agent, d: &Drain) -> Result<bool> {
    let (Some(dispatch), Some(bead)) = (a.dispatch, a.bead.clone()) else {
        return Ok(false);
    };
    // Once per dispatch and drain: asked again by a drain begun after a `gt resume`.
    let id = format!("drain-{dispatch}-{}", d.since);
    if crate::state::mail::get(town.db.conn(), &id)
        .map_err(|e| town.db_err(e))?
        .is_some()
    {
        return Ok(false); // asked already
    }
    write_marker(town, a)?;
    let by = match d.deadline {
        Some(at) if d.mode == "drain" => format!(
            "within {} (then you are stopped and your uncommitted work is committed for you)",
            format_span((at - now_ms()).max(0))
        ),
        _ => "now".into(),
    };
    let m = Mail::new(
        id,
        HUMAN,
        a.id.clone(),
        format!("stop for now: {} is being drained", d.what()),
        format!(
            "The crew is being stopped. Finish the step you are on, commit it, record where \
             you are with `gt checkpoint -m NOTE`, then exit, {by}. If your work on {bead} is \
             complete, `gt done` instead. Your bead is resumed from your branch and \
             checkpoints after `gt resume`; this attempt is not counted."
        ),
        now_ms(),
    )
    // For this dispatch only: it ends with it, and never reaches the next agent.
    .for_generation(a.generation);
    let new = town.db.write(|tx| {
        let new = super::mail::post(tx, &m)?;
        if new {
            tx.event(
                "drain.asked",
                &a.id,
                serde_json::json!({ "bead": bead, "dispatch": dispatch }),
            )?;
        }
        Ok(new)
    })?;
    super::mail::deliver(town)?;
    Ok(new)
}

fn write_marker(town: &Town, a: &agents::Agent) -> Result<()> {
    let dir = super::workspace::places(town, &a.rig, &a.name).box_dir;
    if !dir.is_dir() {
        return Ok(()); // no mailbox yet: nothing in a container to tell
    }
    let m = StopMarker {
        generation: a.generation,
        at: now_ms(),
    };
    let data = serde_json::to_vec(&m).map_err(|e| Error::Other(e.to_string()))?;
    crate::util::write_atomic(&dir.join(STOP_FILE), &data)
}

/// The current-generation container of `a` among `observed`.
fn container_of<'o>(observed: &'o [Observed], a: &agents::Agent) -> Option<&'o Observed> {
    observed.iter().find(|c| {
        c.labels.get(LABEL_RIG) == Some(&a.rig)
            && c.labels.get(LABEL_AGENT) == Some(&a.name)
            && c.generation() == Some(a.generation)
    })
}

/// Park `a`, whose container (if any) has ended or was just stopped by its sweep:
/// keep its output and usage (read before the container goes), remove the container
/// (stopping it first if it still runs: SIGTERM, `gt agent run` commits its work in
/// progress, SIGKILL after a grace), take its worktree away when nothing is left
/// uncommitted in it, and put its bead back to `open`, queued, on its branch, the
/// attempt not counted. None when someone else moved the agent first.
pub fn park(
    town: &mut Town,
    rt: &dyn Runtime,
    a: &agents::Agent,
    container: Option<&Observed>,
    ended_on_its_own: bool,
) -> Result<Option<Parked>> {
    let (Some(bead), Some(dispatch)) = (a.bead.clone(), a.dispatch) else {
        return Ok(None);
    };
    if let Some(c) = container {
        // Its output (what it printed while stopping included) and usage, as patrol
        // keeps them when an agent ends: read before the container is removed.
        match super::transcript::save(town, rt, &c.id, &a.rig, &bead, dispatch) {
            Ok(()) => {}
            Err(e @ Error::RuntimeUnavailable { .. }) => return Err(e),
            Err(e) => tracing::warn!("transcript of {} not kept: {e}", a.id),
        }
        rt.remove(&c.id, STOP_GRACE).or_else(|e| match e {
            e @ Error::RuntimeUnavailable { .. } => Err(e),
            e => {
                tracing::warn!("stopping {}: {e}", c.name);
                Ok(())
            }
        })?;
    }
    fail::fail_point!("drain.after_stop");
    super::secret::remove_secrets(town, &a.rig, &a.name)?;
    let kept = super::done::retire_worktree(town, a, None)?;
    let parked = town.db.write(|tx| {
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE agents SET updated_at = ?3, version = version + 1
                 WHERE id = ?1 AND generation = ?2 AND state IN ('running','spawning')",
                rusqlite::params![a.id, a.generation, now],
            )
            .map_err(|e| tx.err(e))?;
        if n == 0 {
            return Ok(false);
        }
        let counted = dispatches::get(tx, dispatch)
            .map_err(|e| tx.err(e))?
            .is_some_and(|d| d.container_id.is_some());
        dispatches::end(tx, dispatch, now, None, false, REASON).map_err(|e| tx.err(e))?;
        tx.execute(
            "UPDATE beads SET status = 'open', queued_at = ?2, updated_at = ?2,
               attempts = CASE WHEN ?3 AND attempts > 0 THEN attempts - 1 ELSE attempts END,
               version = version + 1
             WHERE id = ?1 AND status IN ('hooked','in_progress')",
            rusqlite::params![bead, now, counted],
        )
        .map_err(|e| tx.err(e))?;
        agents::release(tx, &a.id, a.generation, kept, now).map_err(|e| tx.err(e))?;
        tx.event(
            "drain.parked",
            &bead,
            serde_json::json!({
                "agent": a.id, "generation": a.generation, "branch": a.branch,
                "ended_on_its_own": ended_on_its_own, "kept_worktree": kept,
            }),
        )?;
        super::convoy::on_bead_changed(tx, &bead)?;
        Ok(true)
    })?;
    let _ = std::fs::remove_file(
        super::workspace::places(town, &a.rig, &a.name)
            .box_dir
            .join(STOP_FILE),
    );
    // Its "stop for now" was for this dispatch: it ends with it.
    super::mail::expire_ended(town)?;
    Ok(parked.then(|| Parked {
        agent: a.id.clone(),
        bead,
        branch: a.branch.clone(),
        ended_on_its_own,
        kept_worktree: kept.then(|| a.worktree.clone()).flatten(),
    }))
}

/// Whether `d` (the same drain: its scope and start) is still in force: a `gt resume`
/// since it was read means nothing more is stopped in its name.
fn in_force(town: &Town, d: &Drain) -> Result<bool> {
    Ok(active_scope(town, &d.scope)?.is_some_and(|now| now.since == d.since))
}

/// Record what asking or parking one agent came to: one agent that cannot be stopped
/// must not keep the others working (patrol tries it again).
fn note(report: &mut Report, a: &agents::Agent, r: Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e @ (Error::LeaseLost { .. } | Error::RuntimeUnavailable { .. })) => Err(e),
        Err(e) => {
            tracing::warn!("draining {}: {e}", a.id);
            report.errors.push(format!("{}: {e}", a.id));
            report.failed.insert(a.id.clone());
            Ok(())
        }
    }
}

/// One look at a drain: agents whose container ended are parked; the rest are asked
/// (once) to stop, or, when the drain is due, stopped all at once (every one signalled
/// first, then one grace for them all) and parked; each goes into `report`.
fn sweep(
    town: &mut Town,
    rt: &dyn Runtime,
    d: &Drain,
    observed: &[Observed],
    report: &mut Report,
) -> Result<()> {
    let now = now_ms();
    let mut due = Vec::new();
    for a in working(town, d)? {
        let c = container_of(observed, &a);
        let running = c.is_some_and(|c| c.state == RunState::Running);
        if a.state == "spawning" {
            // A sling that started before the drain: stopped once it runs (or undone by
            // patrol after its spawn timeout).
            continue;
        }
        if !running || d.due(now) {
            due.push((a, c, running));
            continue;
        }
        let r = ask(town, &a, d).map(|asked| {
            if asked {
                report
                    .asked
                    .push(format!("{} on {}", a.id, a.bead.as_deref().unwrap_or("-")));
            }
        });
        note(report, &a, r)?;
    }
    if due.is_empty() || !in_force(town, d)? {
        return Ok(());
    }
    // Signal every running one first (its marker written before: `gt agent run` then
    // commits its work in progress), then wait one grace for all of them.
    let mut stop = Vec::new();
    for (a, c, running) in &mut due {
        if let (true, Some(c)) = (*running, c) {
            match write_marker(town, a) {
                Ok(()) => stop.push(c.id.as_str()),
                Err(e) => {
                    *running = false;
                    note(report, a, Err(e))?;
                }
            }
        }
    }
    fail::fail_point!("drain.before_stop");
    for (id, r) in stop
        .iter()
        .zip(crate::runtime::stop_all(rt, &stop, STOP_GRACE))
    {
        match r {
            Ok(()) => {}
            Err(e @ Error::RuntimeUnavailable { .. }) => return Err(e),
            // `park` removes it (and stops it first) anyway.
            Err(e) => tracing::warn!("stopping {id}: {e}"),
        }
    }
    for (a, c, running) in due {
        if report.failed.contains(&a.id) {
            continue;
        }
        let r = park(town, rt, &a, c, !running).map(|p| report.parked.extend(p));
        note(report, &a, r)?;
    }
    Ok(())
}

/// `gt drain` / `gt stop`: begin the drain, ask the agents, wait until every one has
/// ended (or said done) or the deadline passed, then stop the rest. `timeout` None
/// stops at once.
pub fn run(
    town: &mut Town,
    rt: &dyn Runtime,
    scope: Option<&str>,
    timeout: Option<Duration>,
    progress: &mut dyn FnMut(&str),
) -> Result<Report> {
    let d = begin(town, scope, timeout)?;
    let mut report = Report {
        scope: d.scope.clone(),
        mode: d.mode.clone(),
        since: d.since,
        deadline: d.deadline,
        ..Default::default()
    };
    let before: Vec<agents::Agent> = working(town, &d)?;
    loop {
        // Requests first: an agent that said done hands its work over as usual.
        super::ingest::ingest_all(town)?;
        let observed = rt.list(&town.id)?;
        // A `gt resume` since it began ends this drain: it stops waiting, and no agent
        // (asked already, or dispatched since) is stopped in its name.
        let Some(d) = active_scope(town, &d.scope)?.filter(|now| now.since == d.since) else {
            report.lifted = true;
            break;
        };
        let asked = report.asked.len();
        let parked = report.parked.len();
        sweep(town, rt, &d, &observed, &mut report)?;
        for line in &report.asked[asked..] {
            progress(&format!("asked {line} to checkpoint and stop"));
        }
        for p in &report.parked[parked..] {
            progress(&park_line(p));
        }
        let left = working(town, &d)?;
        if left.is_empty() {
            break;
        }
        let now = now_ms();
        if d.due(now)
            && left
                .iter()
                .all(|a| a.state == "spawning" || report.failed.contains(&a.id))
        {
            // Slings still starting, agents that could not be stopped: patrol tries
            // them again on every pass.
            report.still_working = left.iter().map(|a| a.id.clone()).collect();
            break;
        }
        crate::interrupt::step("drain.wait").map_err(|e| match e {
            Error::Interrupted { signal, .. } => Error::Interrupted {
                signal,
                undone: "nothing undone: the drain stays in force, patrol stops the agents still working at its deadline; `gt resume` lifts it".into(),
            },
            e => e,
        })?;
        std::thread::sleep(Duration::from_millis(200));
    }
    // Mark the drain complete (unless it was lifted): whatever starts running in it
    // later is stopped at once.
    if !report.lifted {
        town.db.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE drains SET mode = 'stop' WHERE scope = ?1 AND since = ?2",
                    rusqlite::params![d.scope, d.since],
                )
                .map_err(|e| tx.err(e))?;
            if n == 1 {
                tx.event(
                    "drain.stopped",
                    &d.scope,
                    serde_json::json!({ "parked": report.parked.len() }),
                )?;
            }
            Ok(())
        })?;
        report.mode = "stop".into();
    }
    let parked: std::collections::HashSet<&str> =
        report.parked.iter().map(|p| p.agent.as_str()).collect();
    // Those that said done: no longer working on that dispatch, their bead past `open`
    // (a bead parked by a patrol running alongside is open again). After a resume, the
    // agents still working are neither.
    let still = working(town, &d)?;
    report.finished = before
        .iter()
        .filter(|a| !parked.contains(a.id.as_str()))
        .filter(|a| {
            !still
                .iter()
                .any(|w| w.id == a.id && w.generation == a.generation)
        })
        .filter_map(|a| {
            let bead = crate::state::beads::get(town.db.conn(), a.bead.as_deref()?)
                .ok()
                .flatten()?;
            (bead.status != "open").then(|| format!("{} on {}", a.id, bead.id))
        })
        .collect();
    tell_mayor(town, &report)?;
    Ok(report)
}

fn active_scope(town: &Town, scope: &str) -> Result<Option<Drain>> {
    town.db
        .conn()
        .query_row(
            "SELECT scope, mode, since, deadline FROM drains WHERE scope = ?1",
            [scope],
            from_row,
        )
        .optional()
        .map_err(|e| town.db_err(e))
}

pub fn park_line(p: &Parked) -> String {
    let how = if p.ended_on_its_own {
        "ended on its own"
    } else {
        "stopped"
    };
    let work = match &p.kept_worktree {
        Some(wt) => format!("uncommitted work kept in {wt}"),
        None => format!(
            "work saved on branch {}",
            p.branch.as_deref().unwrap_or("-")
        ),
    };
    format!("{} {how}: {} is open again, {work}", p.agent, p.bead)
}

/// One notice per drain for the mayor, naming what stopped.
fn tell_mayor(town: &mut Town, r: &Report) -> Result<()> {
    if r.parked.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = r.parked.iter().map(park_line).collect();
    let scope = if r.scope == TOWN {
        "the whole town".to_string()
    } else {
        format!("rig {}", r.scope)
    };
    // gt's own report (a notice, as patrol's are), not a person's message.
    let m = Mail::new(
        format!("drained-{}-{}", r.scope.replace('*', "town"), r.since),
        super::patrol::ACTOR,
        MAYOR,
        format!("{scope} drained: {} agent(s) stopped", r.parked.len()),
        format!(
            "{}\n\nNothing is dispatched there until `gt resume`.",
            lines.join("\n")
        ),
        now_ms(),
    );
    town.db.write(|tx| super::mail::post(tx, &m).map(|_| ()))
}

/// Patrol's step: for every drain, park the agents whose containers ended, ask the
/// new ones to stop, and stop the rest once the drain is due (a `gt drain` that was
/// killed while it waited is finished here). Its report names the agents parked and
/// the errors met.
pub fn patrol_step(town: &mut Town, rt: &dyn Runtime, observed: &[Observed]) -> Result<Report> {
    let mut report = Report::default();
    let now = now_ms();
    for d in all(town.db.conn()).map_err(|e| town.db_err(e))? {
        sweep(town, rt, &d, observed, &mut report)?;
        if d.mode == "drain" && d.due(now) && working(town, &d)?.is_empty() {
            // Only this drain: one lifted (and maybe begun again) since is not touched.
            town.db.write(|tx| {
                let n = tx
                    .execute(
                        "UPDATE drains SET mode = 'stop' WHERE scope = ?1 AND since = ?2",
                        rusqlite::params![d.scope, d.since],
                    )
                    .map_err(|e| tx.err(e))?;
                if n == 1 {
                    tx.event("drain.stopped", &d.scope, serde_json::json!({}))?;
                }
                Ok(())
            })?;
        }
    }
    Ok(report)
}
