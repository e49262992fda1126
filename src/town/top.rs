//! What `gt top` shows: a [`Snapshot`] of the town built from the database with
//! read-only queries, plus what the engine said in its last [`probe`] (one list call,
//! and the last output of each working agent's container). Nothing here writes.

use super::Town;
use crate::error::Result;
use crate::runtime::{LABEL_AGENT, LABEL_RIG, RunState, Runtime};
use crate::state::merge_requests::{self, MrState};
use crate::state::{agents, beads, checkpoints, dispatches, events, mail, rigs};
use serde::Serialize;
use std::collections::BTreeMap;

/// Bead statuses that need a person: given up, or handed to the mayor.
const TROUBLED_BEADS: [&str; 2] = ["failed", "escalated"];
/// At most this many failed or escalated beads are named one by one (the rest counted).
const MAX_BEAD_PROBLEMS: usize = 20;
/// Free space under which the town's disk is a problem.
const LOW_DISK: u64 = 1 << 30;

/// What the engine said when last asked.
#[derive(Debug, Clone, Serialize)]
pub struct Engine {
    /// When it was asked (epoch ms).
    pub at: i64,
    /// Why it could not be asked (Docker down, timed out); None when it answered.
    pub error: Option<String>,
    /// This town's containers by agent (`RIG/NAME`), the newest generation's.
    pub containers: BTreeMap<String, Container>,
    /// Rigs whose image the engine does not have: `(rig, image)`.
    pub missing_images: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub state: RunState,
    pub generation: Option<i64>,
    /// When it last wrote output (epoch ms), for running containers.
    pub last_output_at: Option<i64>,
    /// Its last non-empty output line (secrets redacted, not yet escaped).
    pub last_line: Option<String>,
}

impl Engine {
    /// The engine could not be reached.
    pub fn down(error: &crate::error::Error) -> Engine {
        Engine {
            at: crate::util::now_ms(),
            error: Some(error.to_string()),
            containers: BTreeMap::new(),
            missing_images: Vec::new(),
        }
    }
}

/// Ask the engine: one list call for the town's containers, then for each running one
/// of a working agent its last output (two small log reads), and whether each rig's
/// image exists. A failed call makes the whole answer "down" with its reason.
pub fn probe(town: &Town, rt: &dyn Runtime) -> Engine {
    match try_probe(town, rt) {
        Ok(e) => e,
        Err(e) => Engine::down(&e),
    }
}

fn try_probe(town: &Town, rt: &dyn Runtime) -> Result<Engine> {
    let conn = town.db.conn();
    let working: BTreeMap<String, i64> = agents::list(conn, None)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|a| a.bead.is_some())
        .map(|a| (a.id, a.generation))
        .collect();
    let mut containers: BTreeMap<String, (String, Container)> = BTreeMap::new();
    for c in rt.list(&town.id)? {
        let (Some(rig), Some(name)) = (c.labels.get(LABEL_RIG), c.labels.get(LABEL_AGENT)) else {
            continue;
        };
        let id = agents::id(rig, name);
        let newer = containers
            .get(&id)
            .is_none_or(|(_, old)| old.generation < c.generation());
        if newer {
            let view = Container {
                state: c.state,
                generation: c.generation(),
                last_output_at: None,
                last_line: None,
            };
            containers.insert(id, (c.id.clone(), view));
        }
    }
    for (agent, (cid, view)) in containers.iter_mut() {
        let current = working
            .get(agent)
            .is_some_and(|g| view.generation == Some(*g));
        if !current || view.state != RunState::Running {
            continue;
        }
        view.last_output_at = rt.last_output_at(cid)?;
        let tail = rt.logs(cid, 5)?;
        view.last_line = super::transcript::last_words(&super::secret::redact(town, &tail));
    }
    let mut missing_images = Vec::new();
    let mut present: BTreeMap<String, bool> = BTreeMap::new();
    for r in rigs::all(conn).map_err(|e| town.db_err(e))? {
        let ok = match present.get(&r.image) {
            Some(ok) => *ok,
            None => {
                let ok = rt.image_exists(&r.image)?;
                present.insert(r.image.clone(), ok);
                ok
            }
        };
        if !ok {
            missing_images.push((r.name, r.image));
        }
    }
    Ok(Engine {
        at: crate::util::now_ms(),
        error: None,
        containers: containers.into_iter().map(|(k, (_, v))| (k, v)).collect(),
        missing_images,
    })
}

/// Everything `gt top` draws, at one moment.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub town: String,
    /// When it was taken (epoch ms).
    pub at: i64,
    /// The newest event's id: a change of it means the town changed.
    pub events_mark: i64,
    /// What needs a person, most urgent kinds first.
    pub problems: Vec<Problem>,
    pub rigs: Vec<RigView>,
    /// Open merge requests and the latest of each bead that needs a person.
    pub merge_queue: Vec<MrView>,
    /// Convoys not yet landed or closed.
    pub convoys: Vec<ConvoyLine>,
    pub mayor_unread: i64,
    pub patrol: PatrolView,
    /// Whether the engine answered when last asked; None before the first answer.
    pub engine_up: Option<bool>,
    pub breaker_open: bool,
}

/// Kinds of problem, in the order the panel lists them (named in JSON as in the panel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ProblemKind {
    #[serde(rename = "docker")]
    DockerDown,
    #[serde(rename = "breaker")]
    BreakerOpen,
    #[serde(rename = "patrol")]
    Patrol,
    #[serde(rename = "image")]
    Image,
    #[serde(rename = "disk")]
    Disk,
    #[serde(rename = "stalled")]
    Stalled,
    #[serde(rename = "quiet")]
    Quiet,
    #[serde(rename = "sling")]
    StoppedSling,
    #[serde(rename = "bead")]
    Bead,
    #[serde(rename = "mr")]
    MergeRequest,
    #[serde(rename = "remote")]
    Remote,
}

impl ProblemKind {
    pub const ALL: [ProblemKind; 11] = [
        ProblemKind::DockerDown,
        ProblemKind::BreakerOpen,
        ProblemKind::Patrol,
        ProblemKind::Image,
        ProblemKind::Disk,
        ProblemKind::Stalled,
        ProblemKind::Quiet,
        ProblemKind::StoppedSling,
        ProblemKind::Bead,
        ProblemKind::MergeRequest,
        ProblemKind::Remote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::DockerDown => "docker",
            ProblemKind::BreakerOpen => "breaker",
            ProblemKind::Patrol => "patrol",
            ProblemKind::Image => "image",
            ProblemKind::Disk => "disk",
            ProblemKind::Stalled => "stalled",
            ProblemKind::Quiet => "quiet",
            ProblemKind::StoppedSling => "sling",
            ProblemKind::Bead => "bead",
            ProblemKind::MergeRequest => "mr",
            ProblemKind::Remote => "remote",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What it is about: an agent (`RIG/NAME`), a bead, a merge request id, a rig.
    pub subject: String,
    /// What is wrong and, where there is one, what to run.
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct RigView {
    pub name: String,
    /// Polecats holding a bead (spawning, running, finishing, dead awaiting re-dispatch).
    pub agents: Vec<AgentView>,
    pub idle: usize,
    /// Open beads not slung (`gt sling` starts them); the queued ones are not among them.
    pub open: i64,
    /// Open beads slung and waiting for a free polecat (patrol dispatches them).
    pub queued: i64,
    /// Since when (epoch ms) a drain or stop of the rig (or the town) holds its
    /// dispatches, until `gt resume`.
    pub drained_since: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct AgentView {
    /// `RIG/NAME`
    pub id: String,
    pub state: String,
    pub bead: String,
    pub bead_title: String,
    /// This dispatch's attempt at the bead (1-based), of `max_attempts`: the bead's
    /// attempts used, as patrol counts them (see `bead::current_attempt`).
    pub attempt: i64,
    pub max_attempts: i64,
    /// When this dispatch started (epoch ms).
    pub started_at: Option<i64>,
    /// Its latest applied request, else the dispatch's start.
    pub last_heard: Option<i64>,
    /// The checkpoint it resumes from: its own latest, else the latest note of an
    /// earlier attempt at the bead (what its `gt prime` shows); None when the bead has none.
    pub checkpoint: Option<CheckpointView>,
    /// Its container's last output line (agent text, secrets redacted).
    pub last_output: Option<String>,
    /// When its container last wrote output (epoch ms), while it runs.
    pub last_output_at: Option<i64>,
    /// Its container as the engine last saw it: running, exited, … or none.
    pub container: Option<RunState>,
    pub quiet: bool,
    pub stalled: bool,
}

#[derive(Debug, Serialize)]
pub struct CheckpointView {
    /// When it was recorded (epoch ms).
    pub at: i64,
    /// Its note, or the done saga's step (agent text: escape before printing).
    pub note: String,
    /// Recorded by an earlier dispatch of the bead, not by this one.
    pub earlier: bool,
    /// That dispatch's attempt at the bead, when it spent one.
    pub attempt: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct MrView {
    pub id: i64,
    pub bead: String,
    pub rig: String,
    pub state: MrState,
    pub branch: String,
    pub age_since: i64,
    pub reason: Option<String>,
    /// Its bead's status now: a merge request sent back to a bead that is worked on
    /// again (reopened, re-dispatched, done anew) needs nobody.
    pub bead_status: String,
}

impl MrView {
    /// Needs a person: review, or it failed to land and its bead is given up (failed or
    /// escalated), not worked on again.
    pub fn needs_person(&self) -> bool {
        match self.state {
            MrState::NeedsReview => true,
            MrState::Conflict | MrState::Failed => {
                TROUBLED_BEADS.contains(&self.bead_status.as_str())
            }
            _ => false,
        }
    }

    /// The first line of its reason (a gate's output and a conflict list follow it).
    pub fn reason_line(&self) -> Option<&str> {
        self.reason.as_deref().map(first_line)
    }
}

/// The first non-empty line of `text` (trimmed at its end), or "" when it has none.
pub fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[derive(Debug, Serialize)]
pub struct ConvoyLine {
    pub id: String,
    pub name: String,
    pub state: String,
    pub done: usize,
    pub failed: usize,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct PatrolView {
    /// When the last pass started and finished (epoch ms).
    pub last_started: Option<i64>,
    pub last_finished: Option<i64>,
    /// A pass holds the lease now.
    pub running: bool,
    pub interval_ms: i64,
}

/// The town now, with `engine` the last answer of [`probe`] (None: not asked yet).
pub fn snapshot(town: &Town, engine: Option<&Engine>, now: i64) -> Result<Snapshot> {
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    let mut problems = engine_problems(engine);
    let breaker_open = super::patrol::breaker_is_open(town)?;
    if breaker_open {
        problems.push(Problem {
            kind: ProblemKind::BreakerOpen,
            subject: "breaker".into(),
            text: "circuit breaker open: new dispatches are paused; `gt resume` closes it".into(),
        });
    }
    let patrol = patrol_view(town)?;
    problems.extend(patrol_problem(town, &patrol, now)?);
    problems.extend(disk_problem(town));
    problems.extend(remote_problems(town)?);
    let rigs = rig_views(town, engine, now, &mut problems)?;
    problems.extend(bead_problems(town)?);
    let merge_queue = merge_queue(town)?;
    problems.extend(merge_queue.iter().filter_map(mr_problem));
    problems.sort_by_key(|p| p.kind);
    Ok(Snapshot {
        town: town.root.display().to_string(),
        at: now,
        events_mark: events::max_id(conn).map_err(err)?,
        problems,
        rigs,
        merge_queue,
        convoys: convoys(town)?,
        mayor_unread: mail::inbox(conn, "mayor", true).map_err(err)?.len() as i64,
        patrol,
        engine_up: engine.map(|e| e.error.is_none()),
        breaker_open,
    })
}

/// The engine does not answer, or lacks a rig's image.
fn engine_problems(engine: Option<&Engine>) -> Vec<Problem> {
    match engine {
        Some(Engine {
            error: Some(why), ..
        }) => vec![Problem {
            kind: ProblemKind::DockerDown,
            subject: "docker".into(),
            text: format!(
                "the container engine does not answer ({why}): agents are neither watched nor \
                 started; `docker info` says why"
            ),
        }],
        Some(e) => e
            .missing_images
            .iter()
            .map(|(rig, image)| Problem {
                kind: ProblemKind::Image,
                subject: rig.clone(),
                text: format!(
                    "rig {rig}: image {image} is missing on the engine; `gt image build` or \
                     `gt rig set {rig} --image IMAGE`"
                ),
            })
            .collect(),
        None => Vec::new(),
    }
}

/// Work waits on a patrol that never ran, stopped running, or lags.
fn patrol_problem(town: &Town, patrol: &PatrolView, now: i64) -> Result<Option<Problem>> {
    let text = match super::status::patrol_health(town)?.warning {
        Some(w) => Some(w),
        None => patrol_lag(town, patrol, now)?,
    };
    Ok(text.map(|text| Problem {
        kind: ProblemKind::Patrol,
        subject: "patrol".into(),
        text,
    }))
}

fn disk_problem(town: &Town) -> Option<Problem> {
    let free = free_bytes(&town.root).filter(|f| *f < LOW_DISK)?;
    Some(Problem {
        kind: ProblemKind::Disk,
        subject: "disk".into(),
        text: format!(
            "only {} free under {}: worktrees, transcripts and the database need room",
            crate::util::format_size(free as i64),
            town.root.display()
        ),
    })
}

/// Each rig with its working polecats; a stalled, quiet or half-slung one is a problem.
fn rig_views(
    town: &Town,
    engine: Option<&Engine>,
    now: i64,
    problems: &mut Vec<Problem>,
) -> Result<Vec<RigView>> {
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    let drains = super::drain::all(conn).map_err(err)?;
    let mut views: BTreeMap<String, RigView> = rigs::all(conn)
        .map_err(err)?
        .into_iter()
        .map(|r| {
            let v = RigView {
                drained_since: drains
                    .iter()
                    .filter(|d| d.covers(&r.name))
                    .map(|d| d.since)
                    .min(),
                name: r.name.clone(),
                agents: Vec::new(),
                idle: 0,
                open: 0,
                queued: 0,
            };
            (r.name, v)
        })
        .collect();
    for (rig, (open, queued)) in super::status::open_and_queued(town)? {
        if let Some(r) = views.get_mut(&rig) {
            r.open = open;
            r.queued = queued;
        }
    }
    let quiet: BTreeMap<String, super::patrol::Quiet> = super::patrol::quiet_agents(town, now)?
        .into_iter()
        .map(|q| (q.agent.id.clone(), q))
        .collect();
    for a in agents::list(conn, None).map_err(err)? {
        let Some(rv) = views.get_mut(&a.rig) else {
            continue;
        };
        if a.bead.is_none() {
            rv.idle += usize::from(a.state == "idle");
            continue;
        }
        if a.state == "spawning" && super::patrol::spawn_overdue(town, &a, now) {
            problems.push(Problem {
                kind: ProblemKind::StoppedSling,
                subject: a.id.clone(),
                text: format!(
                    "{}: its sling stopped before the container started (gt killed?); the next \
                     `gt patrol` adopts or undoes it",
                    a.id
                ),
            });
        }
        let view = agent_view(town, &a, engine, quiet.get(&a.id), now)?;
        if view.stalled {
            let since = view
                .last_heard
                .unwrap_or(now)
                .max(view.last_output_at.unwrap_or(0));
            problems.push(Problem {
                kind: ProblemKind::Stalled,
                subject: a.id.clone(),
                text: format!(
                    "{} on {}: stalled, no output and no checkpoint for {}; patrol nudges it, \
                     then restarts it",
                    a.id,
                    view.bead,
                    crate::util::format_span(now - since)
                ),
            });
        } else if let Some(q) = quiet.get(&a.id) {
            problems.push(Problem {
                kind: ProblemKind::Quiet,
                subject: a.id.clone(),
                text: format!("{} (no checkpoint, mail or done)", q.line()),
            });
        }
        rv.agents.push(view);
    }
    Ok(views.into_values().collect())
}

/// One polecat holding a bead: its dispatch, checkpoint and output as known now.
fn agent_view(
    town: &Town,
    a: &agents::Agent,
    engine: Option<&Engine>,
    quiet: Option<&super::patrol::Quiet>,
    now: i64,
) -> Result<AgentView> {
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    let bead_id = a.bead.clone().unwrap_or_default();
    let bead = beads::get(conn, &bead_id).map_err(err)?;
    let d = match a.dispatch {
        Some(id) => dispatches::get(conn, id).map_err(err)?,
        None => None,
    };
    // The one count of attempts, as patrol and sling decide with it.
    let attempt = bead
        .as_ref()
        .map_or(0, |b| super::bead::current_attempt(b, d.as_ref()));
    let last_heard = match &d {
        Some(d) => Some(dispatches::last_heard(conn, d.id).map_err(err)?),
        None => None,
    };
    let checkpoint = resume_checkpoint(town, &bead_id, a.dispatch)?;
    let container = engine.and_then(|e| e.containers.get(&a.id));
    let last_output = match container.and_then(|c| c.last_line.clone()) {
        Some(l) => Some(l),
        // The container is gone: the last words of its kept transcript.
        None => d.as_ref().and_then(|d| {
            super::transcript::read(town, &a.rig, &d.bead, d.id)
                .and_then(|t| super::transcript::last_words(&t))
        }),
    };
    let last_output_at = container.and_then(|c| c.last_output_at);
    let stall_ms = crate::util::millis(town.config.patrol.stall_timeout);
    let stalled = a.state == "running"
        && stall_ms > 0
        && container.is_some_and(|c| c.state == RunState::Running)
        && last_heard.is_some_and(|h| now - h.max(last_output_at.unwrap_or(0)) >= stall_ms);
    Ok(AgentView {
        id: a.id.clone(),
        state: a.state.clone(),
        bead_title: bead.map(|b| b.title).unwrap_or_default(),
        bead: bead_id,
        attempt,
        max_attempts: town.config.defaults.max_attempts as i64,
        started_at: d.as_ref().map(|d| d.started_at),
        last_heard,
        checkpoint,
        last_output,
        last_output_at,
        container: container.map(|c| c.state),
        quiet: quiet.is_some(),
        stalled,
    })
}

/// The checkpoint the agent on `bead` (its dispatch `current`) goes on from: its own
/// latest (a note or a done-saga step), else the latest note of an earlier dispatch.
fn resume_checkpoint(
    town: &Town,
    bead: &str,
    current: Option<i64>,
) -> Result<Option<CheckpointView>> {
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    if let Some(id) = current
        && let Some(c) = checkpoints::for_dispatch(conn, id)
            .map_err(err)?
            .into_iter()
            .next_back()
    {
        return Ok(Some(CheckpointView {
            at: c.at,
            note: c.note.unwrap_or(c.step),
            earlier: false,
            attempt: None,
        }));
    }
    let ds = dispatches::for_bead(conn, bead).map_err(err)?;
    let numbers = super::bead::attempt_numbers(conn, bead, &ds).map_err(err)?;
    let mut latest: Option<CheckpointView> = None;
    for (d, n) in ds.iter().zip(numbers) {
        if Some(d.id) == current {
            continue;
        }
        for c in checkpoints::for_dispatch(conn, d.id).map_err(err)? {
            if c.step != "note" || latest.as_ref().is_some_and(|l| l.at > c.at) {
                continue;
            }
            latest = Some(CheckpointView {
                at: c.at,
                note: c.note.unwrap_or_default(),
                earlier: true,
                attempt: n,
            });
        }
    }
    Ok(latest)
}

/// Failed and escalated beads (the first few by name, then how many more).
fn bead_problems(town: &Town) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    let mut troubled = 0;
    for status in TROUBLED_BEADS {
        for b in beads::list(town.db.conn(), None, Some(status)).map_err(|e| town.db_err(e))? {
            troubled += 1;
            if troubled > MAX_BEAD_PROBLEMS {
                continue;
            }
            out.push(Problem {
                kind: ProblemKind::Bead,
                subject: b.id.clone(),
                text: format!(
                    "bead {} {status} after {} attempt(s): {}; `gt bead show {}`, `gt bead reopen {}`",
                    b.id, b.attempts, b.title, b.id, b.id
                ),
            });
        }
    }
    if troubled > MAX_BEAD_PROBLEMS {
        out.push(Problem {
            kind: ProblemKind::Bead,
            subject: "beads".into(),
            text: format!(
                "and {} more failed or escalated bead(s); `gt bead list --status failed`",
                troubled - MAX_BEAD_PROBLEMS
            ),
        });
    }
    Ok(out)
}

/// A merge request that needs a person: review, or a landing that failed.
/// Rigs whose remote refuses or does not answer their pushes (backed off): what `gt
/// status` lists under `remotes_failing`, as problems.
fn remote_problems(town: &Town) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    for r in crate::state::rigs::all(town.db.conn()).map_err(|e| town.db_err(e))? {
        if let (Some(remote), Some(b)) = (&r.remote, super::done::push_backoff(town, &r.name)?) {
            out.push(Problem {
                kind: ProblemKind::Remote,
                subject: r.name.clone(),
                text: format!(
                    "rig {}: {}; finished work waits on the host (make the remote take gt's pushes; `gt log` has each try)",
                    r.name,
                    b.why(remote)
                ),
            });
        }
    }
    // A hand-over whose branch push the remote refuses (a hook, a protected name): its
    // agent waits finishing; the mayor was told once (`push-failed-DISPATCH`).
    let conn = town.db.conn();
    for a in crate::state::agents::list(conn, None).map_err(|e| town.db_err(e))? {
        let (Some(d), Some(bead)) = (a.dispatch, a.bead.as_deref()) else {
            continue;
        };
        if a.state != "finishing" {
            continue;
        }
        if crate::state::mail::get(conn, &format!("push-failed-{d}"))
            .map_err(|e| town.db_err(e))?
            .is_some()
        {
            out.push(Problem {
                kind: ProblemKind::Remote,
                subject: a.id.clone(),
                text: format!(
                    "{}: the remote refuses the push of {bead}'s branch; the work is safe on the host and the push is tried every pass (`gt mail read push-failed-{d}` says why)",
                    a.id
                ),
            });
        }
    }
    Ok(out)
}

fn mr_problem(m: &MrView) -> Option<Problem> {
    let text = match m.state {
        MrState::NeedsReview => format!(
            "merge request {} ({}) waits for review: `gt diff {}`, then `gt mq approve {}` (or a / r in gt top)",
            m.id, m.bead, m.bead, m.id
        ),
        MrState::Testing
            if m.reason
                .as_deref()
                .is_some_and(|r| r.starts_with(super::mq::land::REFUSED)) =>
        {
            format!(
                "merge request {} ({}) cannot land: {}; let gt push there (or land it by hand): it retries every pass",
                m.id,
                m.bead,
                m.reason
                    .as_deref()
                    .and_then(|r| r.strip_prefix(super::mq::land::REFUSED))
                    .map(first_line)
                    .unwrap_or("")
            )
        }
        // Once its bead is worked on again (reopened, re-dispatched), nobody needs to act.
        MrState::Conflict | MrState::Failed if m.needs_person() => format!(
            "merge request {} ({}) {}{}; `gt mq show {}`",
            m.id,
            m.bead,
            m.state.as_str(),
            m.reason_line()
                .map(|r| format!(": {r}"))
                .unwrap_or_default(),
            m.id
        ),
        _ => return None,
    };
    Some(Problem {
        kind: ProblemKind::MergeRequest,
        subject: m.id.to_string(),
        text,
    })
}

/// Convoys not yet landed or closed.
fn convoys(town: &Town) -> Result<Vec<ConvoyLine>> {
    Ok(super::convoy::list(town)?
        .into_iter()
        .filter(|c| !matches!(c.state.as_str(), "landed" | "closed"))
        .map(|c| ConvoyLine {
            id: c.id,
            name: c.name,
            state: c.state,
            done: c.done,
            failed: c.failed,
            total: c.total,
        })
        .collect())
}

/// Open merge requests (oldest first), and the latest merge request of each bead when
/// it failed to land or waits for review.
fn merge_queue(town: &Town) -> Result<Vec<MrView>> {
    let conn = town.db.conn();
    let all = merge_requests::list(conn, None).map_err(|e| town.db_err(e))?;
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for m in &all {
        let e = latest.entry(m.bead.as_str()).or_insert(m.id);
        *e = (*e).max(m.id);
    }
    let mut out: Vec<MrView> = Vec::new();
    for m in all.iter().filter(|m| {
        m.state.is_open()
            || (matches!(m.state, MrState::Conflict | MrState::Failed)
                && latest.get(m.bead.as_str()) == Some(&m.id))
    }) {
        let bead_status = beads::get(conn, &m.bead)
            .map_err(|e| town.db_err(e))?
            .map(|b| b.status)
            .unwrap_or_default();
        out.push(MrView {
            id: m.id,
            bead: m.bead.clone(),
            rig: m.rig.clone(),
            state: m.state,
            branch: m.branch.clone(),
            age_since: m.queued_at,
            reason: m.reason.clone(),
            bead_status,
        });
    }
    // A sent-back one whose bead is worked on again is history (`gt mq list` has it).
    out.retain(|m| m.state.is_open() || m.needs_person());
    out.sort_by_key(|m| (!m.needs_person(), m.age_since, m.id));
    Ok(out)
}

fn patrol_view(town: &Town) -> Result<PatrolView> {
    use rusqlite::OptionalExtension;
    let conn = town.db.conn();
    let last = |kind: &str| -> Result<Option<i64>> {
        conn.query_row(
            "SELECT at FROM events WHERE subject = 'patrol' AND kind = ?1 ORDER BY id DESC LIMIT 1",
            [kind],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| town.db_err(e))
    };
    let now = crate::util::now_ms();
    let running = crate::state::patrol_lease_live(conn, now).map_err(|e| town.db_err(e))?;
    Ok(PatrolView {
        last_started: last("patrol.started")?,
        last_finished: last("patrol.finished")?,
        running,
        interval_ms: crate::util::millis(town.config.patrol.interval),
    })
}

/// Patrol lags when work waits on it and no pass has started for three intervals and at
/// least two minutes (cron runs it every minute; `--watch` every `patrol.interval`).
fn patrol_lag(town: &Town, p: &PatrolView, now: i64) -> Result<Option<String>> {
    let Some(started) = p.last_started else {
        return Ok(None);
    };
    let limit = (3 * p.interval_ms).max(120_000);
    if p.running || now - started < limit {
        return Ok(None);
    }
    let waiting: i64 = town
        .db
        .conn()
        .query_row(
            "SELECT count(*) FROM agents WHERE state IN ('spawning', 'running', 'finishing', 'dead')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| town.db_err(e))?;
    Ok((waiting > 0).then(|| {
        format!(
            "patrol lags: its last pass started {} ago (interval {}); is cron or `gt patrol --watch` running?",
            crate::util::format_span(now - started),
            crate::util::format_span(p.interval_ms)
        )
    }))
}

/// Bytes free for an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid NUL-terminated string and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// The newest event's id: `gt top` refreshes as soon as it moves.
pub fn events_mark(town: &Town) -> Result<i64> {
    events::max_id(town.db.conn()).map_err(|e| town.db_err(e))
}

/// The kept transcript of `agent`'s latest dispatch (once its container is gone).
pub fn last_transcript(town: &Town, agent: &str) -> Result<Option<String>> {
    let a = super::polecat::get(town, agent)?;
    let last = dispatches::last_of_agent(town.db.conn(), &a.id).map_err(|e| town.db_err(e))?;
    Ok(last.and_then(|d| super::transcript::read(town, &a.rig, &d.bead, d.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_shown_by_its_first_line_with_text() {
        assert_eq!(first_line("gate failed\n\noutput"), "gate failed");
        assert_eq!(
            first_line("\n  \nconflicts: a.txt  \nmore"),
            "conflicts: a.txt"
        );
        assert_eq!(first_line(""), "");
    }

    #[test]
    fn a_problem_kind_is_named_alike_in_json_and_on_screen_and_fits_its_column() {
        for k in ProblemKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert!(k.as_str().len() < 8, "{k:?}");
        }
        let mut sorted = ProblemKind::ALL;
        sorted.sort();
        assert_eq!(sorted, ProblemKind::ALL, "ALL is in the panel's order");
    }
}
