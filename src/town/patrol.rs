//! `gt patrol`: one reconciliation pass over the town, safe to run from cron and to
//! overlap with itself (a lease with a fencing token). The steps of DESIGN.md "Patrol":
//! lease → ingest → list containers (one call) → resume done sagas → record deaths and
//! re-dispatch with backoff → orphans → deliver mail, dispatch queued beads → release.

use super::config::OnExhausted;
use super::{Town, mail::MAYOR};
use crate::error::{Error, Result};
use crate::runtime::{LABEL_AGENT, LABEL_RIG, Observed, RunState, Runtime};
use crate::state::{agents, beads, dispatches, mail::Mail, rigs};
use crate::util::now_ms;
use rusqlite::OptionalExtension;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

pub const ACTOR: &str = "patrol";

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// False when another live patrol held the lease and this one did nothing.
    pub ran: bool,
    pub held_by: Option<String>,
    pub fence: Option<i64>,
    pub ingested: usize,
    pub rejected: usize,
    pub sagas_finished: Vec<String>,
    pub sagas_pending: Vec<String>,
    pub deaths: Vec<Death>,
    pub redispatched: Vec<String>,
    pub exhausted: Vec<String>,
    pub spawns_adopted: Vec<String>,
    pub orphans_removed: Vec<String>,
    /// Worktrees no agent owns that are kept: "PATH (why)".
    pub stray_worktrees: Vec<String>,
    /// Worktrees no agent owned, clean and with their HEAD recorded: removed.
    pub stray_worktrees_removed: Vec<String>,
    pub queued_dispatched: Vec<String>,
    /// Running agents not heard from within `patrol.quiet_after`: "RIG/NAME on BEAD: quiet for 45m".
    pub quiet: Vec<String>,
    /// Running agents with no output and no request for `patrol.stall_timeout`: nudged
    /// through their inbox, or (nudged already, still silent) stopped.
    pub stalled: Vec<String>,
    /// Agents of drained rigs stopped (or found ended) and parked: "RIG/NAME stopped: BEAD is open again, …".
    pub drained: Vec<String>,
    pub mail_delivered: usize,
    /// What the merge queue did in this pass.
    pub merge_queue: super::mq::land::Report,
    pub breaker_open: bool,
    pub runtime_calls: usize,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize, Clone)]
pub struct Death {
    pub agent: String,
    pub bead: String,
    pub generation: i64,
    pub exit_code: Option<i64>,
    pub oom: bool,
    pub reason: String,
    /// The last line of its output (from its transcript), when it printed any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_output: Option<String>,
}

/// Counts runtime calls, so the bench can show they do not grow with agents.
struct Counting<'a> {
    inner: &'a dyn Runtime,
    calls: std::sync::atomic::AtomicUsize,
}

impl Counting<'_> {
    fn bump(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Runtime for Counting<'_> {
    fn create(
        &self,
        spec: &crate::runtime::ContainerSpec,
    ) -> std::result::Result<String, crate::runtime::CreateError> {
        self.bump();
        self.inner.create(spec)
    }
    fn start(&self, id: &str) -> Result<()> {
        self.bump();
        self.inner.start(id)
    }
    fn list(&self, town_id: &str) -> Result<Vec<Observed>> {
        self.bump();
        self.inner.list(town_id)
    }
    fn inspect(&self, id: &str) -> Result<Option<Observed>> {
        self.bump();
        self.inner.inspect(id)
    }
    fn remove(&self, id: &str, grace: Duration) -> Result<()> {
        self.bump();
        self.inner.remove(id, grace)
    }
    fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        self.bump();
        self.inner.stop(id, grace)
    }
    fn logs(&self, id: &str, tail: usize) -> Result<String> {
        self.bump();
        self.inner.logs(id, tail)
    }
    fn last_output_at(&self, id: &str) -> Result<Option<i64>> {
        self.bump();
        self.inner.last_output_at(id)
    }
    fn image_exists(&self, image: &str) -> Result<bool> {
        self.bump();
        self.inner.image_exists(image)
    }
    fn follow_logs(
        &self,
        id: &str,
        tail: usize,
        each: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        self.bump();
        self.inner.follow_logs(id, tail, each)
    }
    fn starts_on_create(&self) -> bool {
        self.inner.starts_on_create()
    }
}

/// One pass. `connect` yields the runtime (retried with backoff when unreachable).
pub fn pass(town: &mut Town, connect: &dyn Fn() -> Result<Box<dyn Runtime>>) -> Result<Report> {
    let mut report = Report::default();
    // 1. Lease.
    let holder = lease_holder(std::process::id());
    match acquire(town, &holder, Use::Pass)? {
        Err(held_by) => {
            report.held_by = Some(held_by);
            return Ok(report);
        }
        Ok(token) => {
            town.db.set_actor(ACTOR);
            report.ran = true;
            report.fence = Some(token);
            town.db.set_fence(Some((token, town.config.patrol.lease)));
        }
    }
    let mut result = steps(town, connect, &mut report);
    // What `gt status` reports as the last successful pass (under the fence: a pass that
    // lost its lease did not succeed).
    if result.is_ok() {
        let found = super::status::Found::of(&report);
        result = town
            .db
            .write(|tx| super::status::record_pass(tx, report.fence, &found));
    }
    // The engine lost at any point of the pass (connect, list, a saga's inspect, a
    // re-dispatch) is one condition: recorded once, escalated once per outage, exit 5.
    if let Err(e @ Error::RuntimeUnavailable { .. }) = &result
        && let Err(down) = runtime_down(town, e)
    {
        result = Err(down);
    }
    release(town, Use::Pass);
    town.db.set_fence(None);
    result.map(|_| report)
}

/// Run `f` under the patrol lease, as a pass would (`gt mq run`): Ok(None) when another
/// patrol holds it.
pub fn exclusive<T>(town: &mut Town, f: impl FnOnce(&mut Town) -> Result<T>) -> Result<Option<T>> {
    let holder = lease_holder(std::process::id());
    let token = match acquire(town, &holder, Use::Exclusive)? {
        Err(_) => return Ok(None),
        Ok(token) => token,
    };
    town.db.set_fence(Some((token, town.config.patrol.lease)));
    let result = f(town);
    release(town, Use::Exclusive);
    town.db.set_fence(None);
    result.map(Some)
}

fn steps(
    town: &mut Town,
    connect: &dyn Fn() -> Result<Box<dyn Runtime>>,
    report: &mut Report,
) -> Result<()> {
    // 2. Ingest every outbox.
    let ing = super::ingest::ingest_all(town)?;
    report.ingested = ing.applied;
    report.rejected = ing.rejected;
    crate::interrupt::step("patrol.after_ingest")?;

    // 3. The runtime, and ONE list call.
    let rt = connect_with_retry(connect)?;
    let rt = Counting {
        inner: rt.as_ref(),
        calls: Default::default(),
    };
    let observed = rt.list(&town.id)?;
    runtime_up(town)?;
    let by_agent: HashMap<(String, String), Vec<&Observed>> =
        observed.iter().fold(HashMap::new(), |mut m, c| {
            if let (Some(r), Some(a)) = (c.labels.get(LABEL_RIG), c.labels.get(LABEL_AGENT)) {
                m.entry((r.clone(), a.clone())).or_default().push(c);
            }
            m
        });
    crate::interrupt::step("patrol.after_list")?;

    // Agents whose containers this pass replaces or removes itself: not orphans.
    let mut touched: std::collections::HashSet<(String, String)> = Default::default();

    // Stalled agents: nudged once, then stopped (their death is recorded here and they are
    // re-dispatched below, the attempt counted).
    report.stalled = stalled(town, &rt, &by_agent)?;

    // Drains: agents of a drained rig are parked (ended on their own, or stopped once
    // the drain is due), never counted dead; nothing below dispatches there.
    let drained = super::drain::patrol_step(town, &rt, &observed)?;
    for p in &drained.parked {
        touched.insert(p.key());
        report.drained.push(super::drain::park_line(p));
    }
    report.errors.extend(drained.errors);

    // 5–6. Deaths (running agents without a running container) and stuck spawns.
    let now = now_ms();
    for a in agents_in(town, "running")?
        .into_iter()
        .chain(agents_in(town, "spawning")?)
    {
        let mine: Vec<&&Observed> = by_agent
            .get(&(a.rig.clone(), a.name.clone()))
            .map(|v| {
                v.iter()
                    .filter(|c| c.generation() == Some(a.generation))
                    .collect()
            })
            .unwrap_or_default();
        let running = mine.iter().find(|c| c.state == RunState::Running);
        if a.state == "spawning" {
            if !spawn_overdue(town, &a, now) {
                continue; // a sling in progress: leave it alone
            }
            if let Some(c) = running {
                adopt_spawn(town, &a, &c.id)?;
                report.spawns_adopted.push(a.id.clone());
                continue;
            }
        } else if running.is_some() {
            continue;
        }
        // A done it wrote after this pass's ingest, just before its container ended, is
        // not an ending without done: its outbox is read once more before it is called
        // dead (a spawning agent has no outbox to read yet).
        if a.state == "running" {
            let late = super::ingest::ingest_agent(town, &a.rig, &a.name)?;
            report.ingested += late.applied;
            let still = crate::state::agents::get(town.db.conn(), &a.id)
                .map_err(|e| town.db_err(e))?
                .is_some_and(|now| now.state == "running" && now.generation == a.generation);
            if !still {
                continue; // said done meanwhile: its saga runs below
            }
        }
        // Dead: read how it ended (inspect only exited containers).
        let exited = mine.iter().find(|c| c.state == RunState::Exited);
        let ending = crate::agent::Ending::read(
            &super::workspace::places(town, &a.rig, &a.name).outbox,
            a.generation,
        );
        let (exit_code, oom) = how_it_ended(&rt, exited.map(|c| c.id.as_str()), ending)?;
        // Its output outlives the container; its last words go into the death record.
        let mut last_words = None;
        if let (Some(c), Some(d), Some(bead)) = (exited, a.dispatch, a.bead.as_deref()) {
            match super::transcript::save(town, &rt, &c.id, &a.rig, bead, d) {
                Ok(()) => {
                    last_words = super::transcript::read(town, &a.rig, bead, d)
                        .and_then(|t| super::transcript::last_words(&t))
                }
                Err(e @ Error::RuntimeUnavailable { .. }) => return Err(e),
                Err(e) => tracing::warn!("transcript of {} not kept: {e}", a.id),
            }
        }
        let reason = if a.state == "spawning" {
            "spawn abandoned (gt stopped mid-sling)".to_string()
        } else if oom {
            "OOM-killed".to_string()
        } else if exit_code == Some(i64::from(crate::agent::remote::EXIT_UNREACHABLE)) {
            "gt serve was unreachable from the agent (exit 69); see its transcript".to_string()
        } else if exit_code == Some(i64::from(crate::agent::EXIT_STALE)) {
            "a stale container: a newer generation owns the bead (exit 75)".to_string()
        } else if let Some(code) = exit_code {
            format!("exited with code {code} without done")
        } else if let Some(why) = exited.and_then(|c| c.error.as_deref()) {
            format!("the runtime could not run it: {why}")
        } else {
            "container vanished".to_string()
        };
        if let Some(d) = record_death(town, &a, exit_code, oom, &reason, last_words)? {
            report.deaths.push(d);
        }
    }
    fail::fail_point!("patrol.after_deaths");

    // Free slots: the dead after their backoff (or given up after max_attempts) and the
    // queued beads, oldest first. Then the mail. Both before any network work below
    // (sagas' pushes, landings): a rig whose remote hangs delays no dispatch and no mail.
    update_breaker(town, report)?;
    fill_slots(town, &rt, &mut touched, report)?;
    report.mail_delivered = super::mail::deliver(town)?;

    // 4. Resume done sagas (finishing agents, including those just ingested). After the
    // deaths and re-dispatches: a saga can wait on a slow remote (bounded by
    // patrol.push_timeout), and no other agent's recovery waits behind it. An engine
    // lost here is the one outage it is, not one saga problem per agent.
    // Rigs without a remote go first, then those whose remote answered last time, then
    // those whose remote keeps failing; each rig's sagas get a time budget
    // in the pass (`patrol.push_timeout`, at least 10 s): past it, the rest of that
    // rig's sagas wait for the next pass, and no other rig's wait behind them.
    let mut finishing = Vec::new();
    for a in agents_in(town, "finishing")? {
        // 0: no network (no remote), 1: a remote that answered last time, 2: failing.
        let remote = rigs::get(town.db.conn(), &a.rig)
            .map_err(|e| town.db_err(e))?
            .is_some_and(|r| r.remote.is_some());
        let rank = match (remote, super::done::push_backoff(town, &a.rig)?.is_some()) {
            (false, _) => 0u8,
            (true, false) => 1,
            (true, true) => 2,
        };
        finishing.push((rank, a));
    }
    finishing.sort_by(|(f1, a1), (f2, a2)| (f1, &a1.id).cmp(&(f2, &a2.id)));
    let budget = town.config.patrol.push_timeout.max(Duration::from_secs(10));
    let mut spent: HashMap<String, Duration> = HashMap::new();
    for (_, a) in finishing {
        touched.insert((a.rig.clone(), a.name.clone()));
        if spent.get(&a.rig).is_some_and(|s| *s >= budget) {
            report.sagas_pending.push(format!(
                "{}: rig {} spent its time for this pass ({}s, patrol.push_timeout) on other hand-overs; the next pass goes on",
                a.bead.as_deref().unwrap_or("-"),
                a.rig,
                budget.as_secs()
            ));
            continue;
        }
        let started = std::time::Instant::now();
        let outcome = super::done::resume(town, &rt, &a.id);
        *spent.entry(a.rig.clone()).or_default() += started.elapsed();
        match outcome {
            Ok(super::done::SagaOutcome::Finished { bead, .. }) => report.sagas_finished.push(bead),
            Ok(super::done::SagaOutcome::Refused { bead, .. }) => report.exhausted.push(bead),
            Ok(super::done::SagaOutcome::Pending { bead, why, .. }) => {
                report.sagas_pending.push(format!("{bead}: {why}"))
            }
            Err(e @ (Error::LeaseLost { .. } | Error::RuntimeUnavailable { .. })) => return Err(e),
            Err(e) => {
                report.errors.push(format!("saga of {}: {e}", a.id));
                saga_stuck(town, &a, &e)?;
            }
        }
    }
    fail::fail_point!("patrol.after_sagas");

    // The merge queue: one writer per rig, under this pass's lease.
    // Gates are made only by the merge queue, after this pass's list: that list holds
    // every stray one, and the sweep needs no list of its own.
    report.merge_queue = super::mq::land::pass(town, &rt, Some(observed.as_slice()))?;

    // 7. Orphans: containers of this town with no current generation.
    let current: HashMap<(String, String), i64> = agents::list(town.db.conn(), None)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|a| a.state != "idle" && a.state != "nuked")
        .map(|a| ((a.rig, a.name), a.generation))
        .collect();
    for c in &observed {
        let key = (
            c.labels.get(LABEL_RIG).cloned().unwrap_or_default(),
            c.labels.get(LABEL_AGENT).cloned().unwrap_or_default(),
        );
        if c.labels.contains_key(super::mq::land::LABEL_GATE) {
            continue; // a merge request's gate: the merge queue's to end
        }
        if !touched.contains(&key) && current.get(&key).copied() != c.generation() {
            rt.remove(&c.id, Duration::from_secs(2))?;
            report.orphans_removed.push(c.name.clone());
        }
    }
    stray_worktrees(town, report)?;
    fail::fail_point!("patrol.after_orphans");

    // Alive but silent: said once per dispatch, never acted on (only a person can tell
    // a long think from a hang).
    report.quiet = report_quiet(town)?;

    // 8. Mail, and the slots the sagas freed (queued beads and due retries, oldest first).
    report.mail_delivered += super::mail::deliver(town)?;
    fill_slots(town, &rt, &mut touched, report)?;
    report.breaker_open = breaker_is_open(town)?;
    // +1: the version negotiation of connecting.
    report.runtime_calls = 1 + rt.calls.load(std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Running agents with neither output nor a request for `patrol.stall_timeout`. The
/// first time, a mail in its inbox asks it to checkpoint or finish; silent for another
/// `stall_timeout` after that, its container is stopped and its death recorded
/// ("stalled"), counted as an attempt: the re-dispatch resumes with its history. Only
/// agents already silent by their requests cost a runtime call (their last output).
fn stalled(
    town: &mut Town,
    rt: &dyn Runtime,
    by_agent: &HashMap<(String, String), Vec<&Observed>>,
) -> Result<Vec<String>> {
    let limit = crate::util::millis(town.config.patrol.stall_timeout);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let now = now_ms();
    for a in agents_in(town, "running")? {
        let (Some(d), Some(bead)) = (a.dispatch, a.bead.clone()) else {
            continue;
        };
        let heard = dispatches::last_heard(town.db.conn(), d).map_err(|e| town.db_err(e))?;
        if now - heard < limit {
            continue;
        }
        let Some(c) = by_agent
            .get(&(a.rig.clone(), a.name.clone()))
            .and_then(|v| {
                v.iter()
                    .find(|c| c.generation() == Some(a.generation) && c.state == RunState::Running)
            })
        else {
            continue; // dead: the death step below takes it
        };
        let spoke = rt.last_output_at(&c.id)?.unwrap_or(0);
        let silent_since = heard.max(spoke);
        if now - silent_since < limit {
            continue;
        }
        let span = crate::util::format_span(now - silent_since);
        let nudge_id = format!("nudge-{d}");
        let nudged_at = crate::state::mail::get(town.db.conn(), &nudge_id)
            .map_err(|e| town.db_err(e))?
            .map(|m| m.sent);
        match nudged_at {
            None => {
                let m = Mail::new(
                    nudge_id,
                    ACTOR,
                    a.id.clone(),
                    format!("you have been silent for {span}"),
                    format!(
                        "No output and no checkpoint from you on {bead} for {span}. Record progress with                          `gt checkpoint -m NOTE`, or finish with `gt done`. Silent for {} more, this                          attempt is stopped and the bead is dispatched again with your checkpoints.",
                        crate::util::format_span(limit)
                    ),
                    now,
                )
                // For this dispatch: a later one must not read "this attempt is stopped".
                .for_generation(a.generation);
                town.db.write(|tx| {
                    super::mail::post(tx, &m)?;
                    tx.event(
                        "agent.nudged",
                        &a.id,
                        serde_json::json!({ "bead": bead, "silent_ms": now - silent_since }),
                    )
                })?;
                out.push(format!("{} on {bead}: silent for {span}, nudged", a.id));
            }
            // One nudge per dispatch: silent again for `stall_timeout` after it (or after
            // its last word since), it is stopped.
            Some(at) if now - silent_since.max(at) >= limit => {
                // Stopped, then read (what it prints while stopping is kept), then gone.
                super::transcript::stop_and_keep(
                    town,
                    rt,
                    &c.id,
                    &a.rig,
                    &bead,
                    d,
                    Duration::from_secs(5),
                )?;
                rt.remove(&c.id, Duration::from_secs(5))?;
                let reason =
                    format!("stalled: no output or checkpoint for {span}, nudged and still silent");
                record_death(town, &a, None, false, &reason, None)?;
                out.push(format!("{} on {bead}: {reason}; stopped", a.id));
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// Running agents not heard from (no applied request) within `patrol.quiet_after`; the
/// mayor gets one mail per dispatch about each.
fn report_quiet(town: &mut Town) -> Result<Vec<String>> {
    let now = now_ms();
    let mut quiet = Vec::new();
    for q in quiet_agents(town, now)? {
        let (a, d, bead, heard) = (&q.agent, q.dispatch, &q.bead, q.heard);
        let span = crate::util::format_span(q.silence);
        quiet.push(q.line());
        let m = Mail::new(
            format!("quiet-{d}"),
            ACTOR,
            MAYOR,
            format!("{} on {bead} has been quiet for {span}", a.id),
            format!(
                "No checkpoint, mail or done from {} (generation {}) since {}.\n\
                 It may be thinking, or hung. `gt peek {}` shows its recent output; \
                 `gt polecat nuke {}` stops it and puts {bead} back to open.",
                a.id,
                a.generation,
                crate::util::format_time(heard),
                a.id,
                a.id
            ),
            now,
        );
        town.db.write(|tx| {
            if super::mail::post(tx, &m)? {
                tx.event(
                    "agent.quiet",
                    &a.id,
                    serde_json::json!({ "bead": bead, "dispatch": d, "since": heard }),
                )?;
            }
            Ok(())
        })?;
    }
    Ok(quiet)
}

/// How long a running agent last heard from at `last_heard` has been silent, when that
/// makes it quiet (`patrol.quiet_after`, "0s" turning the report off).
/// A running agent not heard from within `patrol.quiet_after`.
pub struct Quiet {
    pub agent: agents::Agent,
    pub dispatch: i64,
    pub bead: String,
    /// When it was last heard from, and for how long it has not been (ms).
    pub heard: i64,
    pub silence: i64,
}

impl Quiet {
    /// "RIG/NAME on BEAD: quiet for 45m", as patrol and `gt status` say it.
    pub fn line(&self) -> String {
        format!(
            "{} on {}: quiet for {}",
            self.agent.id,
            self.bead,
            crate::util::format_span(self.silence)
        )
    }
}

/// Every running agent quiet at `now` (none when `patrol.quiet_after` is off).
pub fn quiet_agents(town: &Town, now: i64) -> Result<Vec<Quiet>> {
    let mut out = Vec::new();
    for a in agents_in(town, "running")? {
        let (Some(dispatch), Some(bead)) = (a.dispatch, a.bead.clone()) else {
            continue;
        };
        let heard = dispatches::last_heard(town.db.conn(), dispatch).map_err(|e| town.db_err(e))?;
        if let Some(silence) = quiet_for(town, heard, now) {
            out.push(Quiet {
                agent: a,
                dispatch,
                bead,
                heard,
                silence,
            });
        }
    }
    Ok(out)
}

pub fn quiet_for(town: &Town, last_heard: i64, now: i64) -> Option<i64> {
    let quiet_after = town.config.patrol.quiet_after.as_millis() as i64;
    (quiet_after > 0 && now - last_heard >= quiet_after).then_some(now - last_heard)
}

/// Whether a spawning agent's sling has run past `spawn_timeout` without finishing (gt
/// killed mid-sling): patrol then adopts its container or undoes the dispatch.
pub fn spawn_overdue(town: &Town, a: &agents::Agent, now: i64) -> bool {
    now - a.updated_at >= crate::util::millis(town.config.defaults.spawn_timeout)
}

/// Connecting asks the engine its API version: one call, and the reachability probe.
fn connect_with_retry(connect: &dyn Fn() -> Result<Box<dyn Runtime>>) -> Result<Box<dyn Runtime>> {
    let waits = [0u64, 250, 750];
    let mut last = None;
    for w in waits {
        std::thread::sleep(Duration::from_millis(w));
        match connect() {
            Ok(rt) => return Ok(rt),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::RuntimeUnavailable {
        msg: "unknown".into(),
        hint: None,
    }))
}

fn agents_in(town: &Town, state: &str) -> Result<Vec<agents::Agent>> {
    Ok(agents::list(town.db.conn(), None)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|a| a.state == state)
        .collect())
}

/// What the patrol lease is taken for. Only a pass is logged as one (`patrol.started`,
/// `patrol.finished`): `gt status` and `gt top` judge patrol by those, and a `gt mq run`
/// or `gt mq reject` under the lease is no pass, failed or not.
#[derive(Clone, Copy, PartialEq)]
enum Use {
    Pass,
    Exclusive,
}

impl Use {
    fn kinds(self) -> (&'static str, &'static str) {
        match self {
            Use::Pass => ("patrol.started", "patrol.finished"),
            Use::Exclusive => ("patrol.lease_taken", "patrol.lease_released"),
        }
    }
}

fn acquire(
    town: &mut Town,
    holder: &str,
    purpose: Use,
) -> Result<std::result::Result<i64, String>> {
    let lease_ms = town.config.patrol.lease.as_millis() as i64;
    town.db.write(|tx| {
        let now = now_ms();
        let row: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT holder, token, expires_at FROM leases WHERE name = 'patrol'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| tx.err(e))?;
        if let Some((h, _, exp)) = &row {
            // A live lease blocks us, unless its holder died on this machine (a patrol
            // killed mid-pass must not stall recovery for a whole lease period).
            if *exp > now && holder_alive(h) {
                return Ok(Err(h.clone()));
            }
        }
        let token = row.map(|r| r.1).unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ('patrol', ?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET holder = ?1, token = ?2, expires_at = ?3",
            rusqlite::params![holder, token, now + lease_ms],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            purpose.kinds().0,
            "patrol",
            serde_json::json!({ "holder": holder, "token": token }),
        )?;
        Ok(Ok(token))
    })
}

/// `pid 123 start 456 on host`: the start time (clock ticks since boot) tells a reused
/// pid from the holder itself.
fn lease_holder(pid: u32) -> String {
    format!(
        "pid {pid} start {} on {}",
        proc_start(pid).unwrap_or_default(),
        hostname()
    )
}

fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn holder_alive(holder: &str) -> bool {
    let parts: Vec<&str> = holder.split_whitespace().collect();
    match parts.as_slice() {
        ["pid", pid, "start", start, "on", host] if *host == hostname() => {
            let Ok(pid) = pid.parse::<u32>() else {
                return true;
            };
            proc_start(pid).map(|s| s.to_string()) == Some(start.to_string())
        }
        // Another machine's holder (a shared town dir): trust the expiry alone.
        _ => true,
    }
}

fn release(town: &mut Town, purpose: Use) {
    let r = town.db.write(|tx| {
        tx.execute("UPDATE leases SET expires_at = 0 WHERE name = 'patrol'", [])
            .map_err(|e| tx.err(e))?;
        tx.event(purpose.kinds().1, "patrol", serde_json::json!({}))
    });
    if let Err(e) = r {
        tracing::warn!("releasing the patrol lease: {e}");
    }
}

/// Finish a sling whose process died after starting the container.
fn adopt_spawn(town: &mut Town, a: &agents::Agent, container: &str) -> Result<()> {
    let (id, generation, bead, dispatch) = (
        a.id.clone(),
        a.generation,
        a.bead.clone().unwrap_or_default(),
        a.dispatch,
    );
    town.db.write(|tx| {
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE agents SET state = 'running', updated_at = ?3, version = version + 1 WHERE id = ?1 AND generation = ?2 AND state = 'spawning'",
                rusqlite::params![id, generation, now],
            )
            .map_err(|e| tx.err(e))?;
        if n == 0 {
            return Ok(());
        }
        tx.execute(
            "UPDATE beads SET status = 'in_progress', attempts = attempts + 1, updated_at = ?2, version = version + 1 WHERE id = ?1 AND status = 'hooked'",
            rusqlite::params![bead, now],
        )
        .map_err(|e| tx.err(e))?;
        if let Some(d) = dispatch {
            dispatches::set_container(tx, d, container).map_err(|e| tx.err(e))?;
        }
        tx.event("sling.adopted", &bead, serde_json::json!({ "agent": id, "generation": generation, "container": container }))
    })
}

/// Docker learns of an OOM kill from an event that can arrive after the exit event, or
/// not at all (containerd drops it when the container's cgroup is already gone). The
/// agent's own record (`gt agent run` reads the cgroup's OOM counter) is preferred;
/// without it, a container killed by SIGKILL (exit code 137) that finished less than
/// this long ago is read again until Docker's flag settles.
const OOM_SETTLE_MS: i64 = 1500;

/// Exit code and OOM flag of an agent's exited container `id`, from Docker and from the
/// agent's `ending` record of this generation. A container that is gone (removed by
/// someone after it ended) is told by the record alone: (None, false) without one.
fn how_it_ended(
    rt: &dyn Runtime,
    id: Option<&str>,
    ending: Option<crate::agent::Ending>,
) -> Result<(Option<i64>, bool)> {
    loop {
        let inspected = match id {
            Some(id) => rt.inspect(id)?,
            None => None,
        };
        let Some(i) = inspected else {
            return Ok((
                ending.map(|e| e.exit_code as i64),
                ending.is_some_and(|e| e.oom),
            ));
        };
        let oom = i.oom || ending.as_ref().is_some_and(|e| e.oom);
        // A SIGKILL a watching patrol saw sent through the engine is no OOM kill.
        let settling = matches!(i.finished_at, Some(f) if now_ms() < f + OOM_SETTLE_MS)
            && !super::watch::signalled_by_engine(&i.id);
        if oom || ending.is_some() || i.exit_code != Some(137) || !settling {
            // The command's own code, when it recorded one: the container's may be that
            // of `gt agent run` killed after the command had ended.
            let code = ending.map(|e| e.exit_code as i64).or(i.exit_code);
            return Ok((code, oom));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// How a dispatch stopped from outside says it did not count.
const NOT_COUNTED: &str =
    "stopped from outside (SIGTERM or SIGKILL, e.g. an engine restart): not counted as an attempt";
/// The words every ending that is not the agent's failure carries (a stop from outside,
/// a drain): the circuit breaker does not count those.
pub(crate) const NOT_AN_ATTEMPT: &str = "not counted as an attempt";
/// Stops from outside forgiven per bead.
const FREE_STOPS: i64 = 3;

fn record_death(
    town: &mut Town,
    a: &agents::Agent,
    exit_code: Option<i64>,
    oom: bool,
    reason: &str,
    last_output: Option<String>,
) -> Result<Option<Death>> {
    let Some(bead) = a.bead.clone() else {
        return Ok(None);
    };
    let death = Death {
        agent: a.id.clone(),
        bead: bead.clone(),
        generation: a.generation,
        exit_code,
        oom,
        reason: reason.to_string(),
        last_output,
    };
    let d2 = death.clone();
    // The dispatch's end, as `gt bead show` tells it: with the agent's last words.
    let mut ended = match &death.last_output {
        Some(w) => format!("{reason}; last output: {w}"),
        None => reason.to_string(),
    };
    // A stop from outside (an engine restart, `docker stop` or `docker kill`: SIGTERM,
    // or SIGKILL when the stop outlasts its grace, without an OOM kill) is not the agent
    // failing: it does not burn an attempt, a few times per bead (then it counts, so a
    // crew that keeps being stopped still ends).
    let stopped_from_outside = !oom && matches!(exit_code, Some(143) | Some(137));
    let recorded = town.db.write(|tx| {
        let now = now_ms();
        let n = tx
            .execute(
                "UPDATE agents SET state = 'dead', updated_at = ?3, version = version + 1
                 WHERE id = ?1 AND generation = ?2 AND state IN ('running','spawning')",
                rusqlite::params![d2.agent, d2.generation, now],
            )
            .map_err(|e| tx.err(e))?;
        if n == 0 {
            return Ok(false);
        }
        if stopped_from_outside {
            let free: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM dispatches WHERE bead = ?1 AND reason LIKE ?2",
                    rusqlite::params![d2.bead, format!("%{NOT_COUNTED}%")],
                    |r| r.get(0),
                )
                .map_err(|e| tx.err(e))?;
            if free < FREE_STOPS {
                tx.execute(
                    "UPDATE beads SET attempts = attempts - 1, version = version + 1 WHERE id = ?1 AND attempts > 0",
                    [&d2.bead],
                )
                .map_err(|e| tx.err(e))?;
                ended = format!("{ended}; {NOT_COUNTED}");
            }
        }
        if let Some(d) = a.dispatch {
            dispatches::end(tx, d, now, exit_code, oom, &ended).map_err(|e| tx.err(e))?;
        }
        tx.event(
            "agent.died",
            &d2.agent,
            serde_json::to_value(&d2).unwrap_or_default(),
        )?;
        Ok(true)
    })?;
    Ok(recorded.then_some(death))
}

/// A dead agent whose bead is given up (attempts or budget spent) is ended here; one
/// that may be re-dispatched returns when its retry is due (its death plus its
/// `retry_backoff`): its place among the beads waiting for a slot of its rig.
fn retry_due(town: &mut Town, a: &agents::Agent, report: &mut Report) -> Result<Option<i64>> {
    let Some(bead_id) = a.bead.clone() else {
        return Ok(None);
    };
    let conn = town.db.conn();
    let bead = beads::get(conn, &bead_id)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| super::bead::not_found(&bead_id))?;
    let d = town.config.defaults.clone();
    if bead.attempts >= d.max_attempts as i64 {
        give_up(town, a, &bead, report)?;
        return Ok(None);
    }
    if breaker_is_open(town)? {
        return Ok(None);
    }
    // A bead over its budget is given up (its spending is the reason); over the daily
    // budget, it waits (the mayor is told once).
    match super::budget::check(town, &bead_id)? {
        Some(over @ super::budget::Over::Bead { .. }) => {
            super::budget::tell(town, &bead_id, &over)?;
            give_up(town, a, &bead, report)?;
            return Ok(None);
        }
        Some(over) => {
            super::budget::tell(town, &bead_id, &over)?;
            return Ok(None);
        }
        None => {}
    }
    let ended = a
        .dispatch
        .and_then(|id| dispatches::get(conn, id).ok().flatten())
        .and_then(|x| x.ended_at)
        .unwrap_or(0);
    let idx = (bead.attempts.max(1) as usize - 1).min(d.retry_backoff.len() - 1);
    let due = ended + d.retry_backoff[idx].as_millis() as i64;
    if now_ms() < due {
        return Ok(None); // backing off
    }
    Ok(Some(due))
}

/// Re-dispatch a dead agent whose retry is due, on its worktree and branch (its rig has
/// a free slot).
fn redispatch(
    town: &mut Town,
    rt: &dyn Runtime,
    a: &agents::Agent,
    report: &mut Report,
) -> Result<()> {
    let Some(bead_id) = a.bead.clone() else {
        return Ok(());
    };
    let bead = beads::get(town.db.conn(), &bead_id)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| super::bead::not_found(&bead_id))?;
    // The branch must still exist once a container has worked on it: work that vanished
    // is said aloud, never papered over. A sling that died before starting any container
    // may never have made it: then the re-dispatch makes it.
    let repo = git2::Repository::open(town.repo_dir(&a.rig))?;
    let branch_exists = a
        .branch
        .as_deref()
        .is_some_and(|b| crate::git::branch_exists(&repo, b));
    if let Some(branch) = &a.branch
        && !branch_exists
        && bead.attempts > 0
    {
        return escalate_lost_branch(town, a, &bead, branch, report);
    }
    let claim = super::sling::claim_redispatch(town, a, branch_exists)?;
    let Some(claim) = claim else { return Ok(()) };
    match super::sling::launch(town, rt, claim) {
        Ok(_) => report.redispatched.push(bead_id),
        Err(e @ Error::LeaseLost { .. }) => {
            return Err(e);
        }
        Err(e) => report.errors.push(format!("re-dispatch of {bead_id}: {e}")),
    }
    Ok(())
}

/// What waits for a free slot of a rig.
enum Waiting {
    /// A dead agent whose retry is due.
    Retry(agents::Agent),
    /// An open bead queued by `gt sling` while the rig was full.
    Queued(String),
}

/// Fill the free slots of every rig, oldest first: a queued bead by when it was queued,
/// a retry by when it became due (a retry does not jump the beads that waited before
/// it; it takes its turn). Dead agents that cannot be helped are given up here. The
/// agents that got (or keep) a container are added to `touched`.
fn fill_slots(
    town: &mut Town,
    rt: &dyn Runtime,
    touched: &mut std::collections::HashSet<(String, String)>,
    report: &mut Report,
) -> Result<()> {
    let mut waiting: HashMap<String, Vec<(i64, Waiting)>> = HashMap::new();
    for a in agents_in(town, "dead")? {
        touched.insert((a.rig.clone(), a.name.clone()));
        if super::drain::active(town, &a.rig)?.is_some() {
            continue; // re-dispatched after `gt resume`
        }
        // One agent that cannot be helped must not stop the pass for every other.
        match retry_due(town, &a, report) {
            Ok(Some(due)) => waiting
                .entry(a.rig.clone())
                .or_default()
                .push((due, Waiting::Retry(a))),
            Ok(None) => {}
            Err(e @ (Error::LeaseLost { .. } | Error::RuntimeUnavailable { .. })) => return Err(e),
            Err(e) => report.errors.push(format!("re-dispatch of {}: {e}", a.id)),
        }
    }
    if breaker_is_open(town)? {
        return Ok(());
    }
    for rig in rigs::all(town.db.conn()).map_err(|e| town.db_err(e))? {
        if super::drain::active(town, &rig.name)?.is_some() {
            continue;
        }
        let mut line = waiting.remove(&rig.name).unwrap_or_default();
        for (at, bead) in
            beads::queued_since(town.db.conn(), &rig.name).map_err(|e| town.db_err(e))?
        {
            line.push((at, Waiting::Queued(bead)));
        }
        // Oldest first; at the same moment, a retry (its bead was dispatched before).
        line.sort_by_key(|(at, w)| (*at, matches!(w, Waiting::Queued(_))));
        for (at, w) in line {
            if agents::live_count(town.db.conn(), &rig.name).map_err(|e| town.db_err(e))?
                >= rig.max_polecats
            {
                break;
            }
            match w {
                Waiting::Retry(a) => match redispatch(town, rt, &a, report) {
                    Ok(()) => {}
                    Err(e @ (Error::LeaseLost { .. } | Error::RuntimeUnavailable { .. })) => {
                        return Err(e);
                    }
                    Err(e) => report.errors.push(format!("re-dispatch of {}: {e}", a.id)),
                },
                Waiting::Queued(bead) => {
                    // A dispatch that fails keeps the bead queued, in its place: it is
                    // tried again next pass, never dropped from the queue.
                    let claim = match super::sling::take_slot(town, &bead, &Default::default()) {
                        Ok(Ok(mut claim)) => {
                            claim.requeue = true;
                            claim.queued_since = Some(at);
                            claim
                        }
                        Ok(Err(_queued)) => break,
                        Err(e @ Error::LeaseLost { .. }) => return Err(e),
                        Err(e) => {
                            report
                                .errors
                                .push(format!("dispatch of queued {bead}: {e}"));
                            continue;
                        }
                    };
                    match super::sling::launch(town, rt, claim) {
                        Ok(super::sling::Slung::Dispatched { agent, .. }) => {
                            if let Some((r, n)) = agent.split_once('/') {
                                touched.insert((r.to_string(), n.to_string()));
                            }
                            report.queued_dispatched.push(bead)
                        }
                        Ok(super::sling::Slung::Queued { .. }) => break,
                        Err(e @ Error::LeaseLost { .. }) => return Err(e),
                        Err(e) => report
                            .errors
                            .push(format!("dispatch of queued {bead}: {e}")),
                    }
                }
            }
        }
    }
    Ok(())
}

fn give_up(
    town: &mut Town,
    a: &agents::Agent,
    bead: &beads::Bead,
    report: &mut Report,
) -> Result<()> {
    let status = match town.config.defaults.on_exhausted {
        OnExhausted::Failed => "failed",
        OnExhausted::Escalated => "escalated",
    };
    super::secret::remove_secrets(town, &a.rig, &a.name)?;
    let kept = super::done::retire_worktree(town, a, None)?;
    let history = dispatches::for_bead(town.db.conn(), &bead.id).map_err(|e| town.db_err(e))?;
    let endings: Vec<String> = history
        .iter()
        .map(|d| {
            format!(
                "generation {} on {}: {}",
                d.generation,
                d.agent,
                d.reason.as_deref().unwrap_or("?")
            )
        })
        .collect();
    let m = Mail::new(
        format!("exhausted-{}", bead.id),
        ACTOR,
        MAYOR,
        format!(
            "[escalation] {} {status} after {} attempts",
            bead.id, bead.attempts
        ),
        format!(
            "{}\n\nbranch {}\n{}",
            bead.title,
            bead.branch.as_deref().unwrap_or("-"),
            endings.join("\n")
        ),
        now_ms(),
    );
    let data = serde_json::json!({ "status": status, "attempts": bead.attempts });
    end_bead(town, a, &bead.id, status, kept, &m, "bead.exhausted", data)?;
    report.exhausted.push(bead.id.clone());
    Ok(())
}

fn escalate_lost_branch(
    town: &mut Town,
    a: &agents::Agent,
    bead: &beads::Bead,
    branch: &str,
    report: &mut Report,
) -> Result<()> {
    let m = Mail::new(
        format!("lost-branch-{}-{}", bead.id, a.generation),
        ACTOR,
        MAYOR,
        format!(
            "[escalation] branch {branch} of {} vanished: its work is lost",
            bead.id
        ),
        format!(
            "{} died and its branch {branch} no longer exists in rig {}. The bead is escalated; nothing was re-dispatched.",
            a.id, a.rig
        ),
        now_ms(),
    );
    let data = serde_json::json!({ "branch": branch });
    end_bead(
        town,
        a,
        &bead.id,
        "escalated",
        false,
        &m,
        "bead.branch_lost",
        data,
    )?;
    report.exhausted.push(bead.id.clone());
    Ok(())
}

/// A done saga that fails for another reason than its push: one escalation per
/// dispatch; the saga is retried on every pass.
fn saga_stuck(town: &mut Town, a: &agents::Agent, e: &Error) -> Result<()> {
    let bead = a.bead.clone().unwrap_or_default();
    let m = Mail::new(
        format!("saga-stuck-{}", a.dispatch.unwrap_or(0)),
        ACTOR,
        MAYOR,
        format!("[escalation] the hand-over of {bead} by {} is stuck", a.id),
        format!(
            "{e}\n\n`gt bead show {bead}` shows the steps done so far; patrol retries every pass."
        ),
        now_ms(),
    );
    town.db.write(|tx| {
        if super::mail::post(tx, &m)? {
            tx.event(
                "saga.stuck",
                &bead,
                serde_json::json!({ "agent": a.id, "error": e.to_string() }),
            )?;
        }
        Ok(())
    })
}

/// Give a dead agent's bead its final status, release the agent and mail the mayor,
/// in one transaction (with the convoys the bead belongs to).
#[allow(clippy::too_many_arguments)]
fn end_bead(
    town: &mut Town,
    a: &agents::Agent,
    bead: &str,
    status: &str,
    kept_worktree: bool,
    mail: &Mail,
    kind: &str,
    data: serde_json::Value,
) -> Result<()> {
    town.db.write(|tx| {
        let now = now_ms();
        tx.execute(
            "UPDATE beads SET status = ?2, updated_at = ?3, version = version + 1
             WHERE id = ?1 AND status IN ('hooked','in_progress')",
            rusqlite::params![bead, status, now],
        )
        .map_err(|e| tx.err(e))?;
        agents::release(tx, &a.id, a.generation, kept_worktree, now).map_err(|e| tx.err(e))?;
        super::mail::post(tx, mail)?;
        tx.event(kind, bead, data)?;
        super::convoy::on_bead_changed(tx, bead)
    })
}

/// Failed dispatches in the breaker window (since the last `gt resume`) above the limit
/// open the breaker once, with one mail.
fn update_breaker(town: &mut Town, report: &mut Report) -> Result<()> {
    if breaker_is_open(town)? {
        report.breaker_open = true;
        return Ok(());
    }
    let p = town.config.patrol.clone();
    let conn = town.db.conn();
    let reset: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'breaker_reset_at'",
            [],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .map_err(|e| town.db_err(e))?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let since = (now_ms() - p.breaker_window.as_millis() as i64).max(reset);
    let failures: i64 = conn
        .query_row(
            // A dispatch stopped from outside (a drain or `gt stop`, an engine restart,
            // `docker kill`) did not fail: it is no attempt, and no breaker failure.
            // Nor is a spawn the host could not make (its disk full or read-only): the
            // host's fault pauses nobody's rig town-wide (the reason is host-written).
            "SELECT count(*) FROM dispatches WHERE ended_at >= ?1 AND reason IS NOT NULL
             AND reason NOT IN ('done','nuked') AND reason NOT LIKE ?2
             AND NOT (reason LIKE 'spawn failed:%' AND (reason LIKE '%No space left on device%'
               OR reason LIKE '%Disk quota exceeded%' OR reason LIKE '%Read-only file system%'))",
            rusqlite::params![since, format!("%{NOT_AN_ATTEMPT}%")],
            |r| r.get(0),
        )
        .map_err(|e| town.db_err(e))?;
    // "More than breaker_failures failed dispatches within breaker_window" trips it.
    if failures <= p.breaker_failures as i64 {
        return Ok(());
    }
    let opened = now_ms();
    let m = Mail::new(
        format!("breaker-{opened}"),
        ACTOR,
        MAYOR,
        format!("[escalation] circuit breaker open: {failures} failed dispatches"),
        format!(
            "{failures} dispatches failed within {}s; new dispatches are paused.\nLook at `gt log` and `gt bead list --status in_progress`, fix the cause, then run `gt resume`.",
            p.breaker_window.as_secs()
        ),
        opened,
    );
    town.db.write(|tx| {
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('breaker_open', ?1)",
            [opened.to_string()],
        )
        .map_err(|e| tx.err(e))?;
        super::mail::post(tx, &m)?;
        tx.event(
            "breaker.opened",
            "town",
            serde_json::json!({ "failures": failures }),
        )
    })?;
    report.breaker_open = true;
    Ok(())
}

pub fn breaker_is_open(town: &Town) -> Result<bool> {
    crate::state::breaker_open(town.db.conn()).map_err(|e| town.db_err(e))
}

/// `gt resume`: close the breaker; failures before now no longer count.
pub fn resume_breaker(town: &mut Town) -> Result<bool> {
    town.db.write(|tx| {
        let was = tx.execute("DELETE FROM meta WHERE key = 'breaker_open'", []).map_err(|e| tx.err(e))? == 1;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('breaker_reset_at', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
            [now_ms().to_string()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event("breaker.closed", "town", serde_json::json!({ "was_open": was }))?;
        Ok(was)
    })
}

/// Docker unreachable: one escalation per outage (the id is the outage's start).
fn runtime_down(town: &mut Town, e: &Error) -> Result<()> {
    let e = e.to_string();
    town.db.write(|tx| {
        let now = now_ms();
        tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('runtime_down_since', ?1)", [now.to_string()])
            .map_err(|e| tx.err(e))?;
        let since: String = tx
            .query_row("SELECT value FROM meta WHERE key = 'runtime_down_since'", [], |r| r.get(0))
            .map_err(|e| tx.err(e))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('runtime_down_passes', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [],
        )
        .map_err(|e| tx.err(e))?;
        let count: i64 = tx
            .query_row("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'runtime_down_passes'", [], |r| r.get(0))
            .map_err(|e| tx.err(e))?;
        tx.event("runtime.unreachable", "runtime", serde_json::json!({ "error": e, "pass": count }))?;
        // Escalate from the third consecutive pass: a blip is not worth a mail.
        if count >= 3 {
            let m = Mail::new(format!("runtime-down-{since}"), ACTOR, MAYOR, "[escalation] the container runtime is unreachable", format!("Docker has not answered for {count} patrol passes:\n{e}\nNo agent is marked dead for this; patrol retries every pass."), now);
            super::mail::post(tx, &m)?;
        }
        Ok(())
    })
}

fn runtime_up(town: &mut Town) -> Result<()> {
    let down = town
        .db
        .conn()
        .query_row(
            "SELECT 1 FROM meta WHERE key = 'runtime_down_since'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(|e| town.db_err(e))?
        .is_some();
    if down {
        town.db.write(|tx| {
            tx.execute(
                "DELETE FROM meta WHERE key IN ('runtime_down_since','runtime_down_passes')",
                [],
            )
            .map_err(|e| tx.err(e))?;
            tx.event("runtime.reachable", "runtime", serde_json::json!({}))
        })?;
    }
    Ok(())
}

/// Worktrees under `rigs/*/polecats/` that no agent owns (a crash between steps, a copy
/// by hand). One that is a worktree of the rig, has no uncommitted change, and whose HEAD
/// is recorded (the commit of a merge request, or merged into the default branch) holds
/// nothing that exists nowhere else: it is removed (the branch stays). Every other one is
/// kept and reported with the reason.
fn stray_worktrees(town: &mut Town, report: &mut Report) -> Result<()> {
    // Where each agent's worktree is now (a moved town's records name the old place).
    let known: std::collections::HashSet<String> = agents::list(town.db.conn(), None)
        .map_err(|e| town.db_err(e))?
        .iter()
        .filter_map(|a| town.agent_worktree(a))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for r in rigs::all(town.db.conn()).map_err(|e| town.db_err(e))? {
        let Ok(dir) = std::fs::read_dir(town.rig_dir(&r.name).join("polecats")) else {
            continue;
        };
        let repo_dir = town.repo_dir(&r.name);
        for e in dir.flatten() {
            let path = e.path();
            let p = path.to_string_lossy().into_owned();
            if known.contains(&p) {
                continue;
            }
            match stray_is_safe(town, &repo_dir, &r.default_branch, &path)? {
                Err(why) => report.stray_worktrees.push(format!("{p} ({why})")),
                Ok(head) => {
                    {
                        let _lock = crate::git::lock(&repo_dir)?;
                        let repo = git2::Repository::open(&repo_dir)?;
                        crate::git::remove_worktree(&repo, &path)?;
                    }
                    town.db.write(|tx| {
                        tx.event(
                            "worktree.removed",
                            &r.name,
                            serde_json::json!({ "path": p, "head": head, "why": "no agent; clean; its commit is recorded" }),
                        )
                    })?;
                    report.stray_worktrees_removed.push(p);
                }
            }
        }
    }
    Ok(())
}

fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
}

/// Ok(HEAD) when a stray worktree holds nothing that exists nowhere else; Err(why) not.
fn stray_is_safe(
    town: &Town,
    repo_dir: &std::path::Path,
    default_branch: &str,
    path: &std::path::Path,
) -> Result<std::result::Result<String, String>> {
    // Found from the host's own registration, never from the directory's `.git` file.
    let repo = git2::Repository::open(repo_dir)?;
    let name = crate::git::worktree_name(path);
    let registered = repo
        .find_worktree(&name)
        .ok()
        .is_some_and(|wt| same_dir(wt.path(), path));
    if !registered {
        return Ok(Err("not a worktree of this rig".into()));
    }
    let Some(head) = git2::Repository::open(crate::git::admin_dir(&repo, path))
        .ok()
        .and_then(|wt| wt.head().ok()?.target())
        .map(|o| o.to_string())
    else {
        return Ok(Err("no HEAD commit".into()));
    };
    let rig = path
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match super::workspace::uncommitted(town, &rig, &name, path, &head) {
        Some(u) if u.is_empty() => {}
        Some(u) => return Ok(Err(format!("{} uncommitted change(s)", u.len()))),
        None => return Ok(Err("its changes cannot be told".into())),
    }
    let recorded: bool = town
        .db
        .conn()
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM merge_requests WHERE commit_id = ?1)",
            [&head],
            |r| r.get(0),
        )
        .map_err(|e| town.db_err(e))?;
    if recorded || crate::git::is_merged_into(&repo, &head, default_branch) {
        Ok(Ok(head))
    } else {
        Ok(Err(format!(
            "commit {} is in no merge request and not merged into {default_branch}",
            &head[..head.len().min(12)]
        )))
    }
}
