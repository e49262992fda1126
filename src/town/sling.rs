//! `gt sling`: assign a bead to a polecat in the four steps of DESIGN.md "Sling":
//! 1. claim (one transaction), 2. worktree + branch, 3. assignment + container,
//! 4. start + mark running. A failure in 2–4 undoes 1–3 before returning.

use super::Town;
use super::config::WorkspaceMode;
use crate::agent::Assignment;
use crate::error::{Error, Result};
use crate::runtime::{
    Bind, ContainerSpec, CreateError, LABEL_AGENT, LABEL_GENERATION, LABEL_RIG, LABEL_TOWN,
    Runtime, Tmpfs,
};
use crate::state::{Tx, Versioned, agents, beads, cas_update, dispatches, rigs};
use crate::util::{now_ms, random_hex, validate_name};
use git2::Repository;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct SlingOptions {
    /// Use this branch instead of `polecat/<name>/<bead>`.
    pub branch: Option<String>,
    /// Use (or create) this polecat instead of any idle one.
    pub polecat: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Slung {
    /// A container runs the bead.
    Dispatched {
        bead: String,
        agent: String,
        generation: i64,
        branch: String,
        container: String,
    },
    /// The rig is at max_polecats: the bead waits, open and queued.
    Queued { bead: String, rig: String },
}

/// What step 1 claimed; everything the later steps need, and what undo must revert.
#[derive(Debug, Clone)]
pub struct Claim {
    pub rig: rigs::Rig,
    pub bead: beads::Bead,
    pub agent: agents::Agent,
    pub dispatch: i64,
    pub token: String,
    pub branch: String,
    pub worktree: PathBuf,
    /// The branch is the bead's own from an earlier attempt: reuse it, never recreate.
    pub resume: bool,
    /// A patrol re-dispatch: if it fails, the bead waits queued for the next pass.
    pub requeue: bool,
    /// Its place in the queue to go back to when `requeue` (a queued bead patrol
    /// dispatches keeps it); None: the back of the queue.
    pub queued_since: Option<i64>,
}

pub fn sling(
    town: &mut Town,
    rt: &dyn Runtime,
    bead_id: &str,
    opts: &SlingOptions,
) -> Result<Slung> {
    match take_slot(town, bead_id, opts)? {
        Ok(claim) => launch(town, rt, claim),
        Err(queued) => Ok(queued),
    }
}

/// Step 1 of a sling with the checks before it: the claim (a polecat slot taken), or
/// `Err(Slung::Queued)` when the rig is full. Claims made one after another get slots,
/// and queue places, in that order (`gt sling A B C`); `launch` does the rest.
pub fn take_slot(
    town: &mut Town,
    bead_id: &str,
    opts: &SlingOptions,
) -> Result<std::result::Result<Claim, Slung>> {
    validate_name("bead", bead_id)?;
    if let Some(p) = &opts.polecat {
        validate_name("polecat", p)?;
    }
    if let Some(b) = &opts.branch
        && !git2::Branch::name_is_valid(b).unwrap_or(false)
    {
        return Err(Error::usage(format!(
            "--branch {b:?} is not a valid branch name"
        )));
    }
    check_secrets(town, bead_id)?;
    if let Some(over) = super::budget::check(town, bead_id)? {
        super::budget::tell(town, bead_id, &over)?;
        return Err(super::budget::refused(bead_id, &over));
    }
    claim(town, bead_id, opts)
}

/// Before the claim: the bead's rig must have every secret it attaches set (exit 2,
/// nothing changed). A bead or rig that does not exist is left for the claim to report.
fn check_secrets(town: &Town, bead_id: &str) -> Result<()> {
    let conn = town.db.conn();
    let Some(bead) = beads::get(conn, bead_id).map_err(|e| town.db_err(e))? else {
        return Ok(());
    };
    let Some(rig) = rigs::get(conn, &bead.rig).map_err(|e| town.db_err(e))? else {
        return Ok(());
    };
    let missing = super::secret::missing(town, &rig.secrets);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(super::secret::missing_error(&rig.name, &missing))
    }
}

/// Steps 2–4 for a claim; on failure (or SIGINT/SIGTERM between steps), undo and
/// return the error.
pub fn launch(town: &mut Town, rt: &dyn Runtime, claim: Claim) -> Result<Slung> {
    let mut made = Made::default();
    let spawned = crate::interrupt::step("sling.after_claim")
        .and_then(|()| spawn(town, rt, &claim, &mut made));
    match spawned {
        Ok(container) => Ok(Slung::Dispatched {
            bead: claim.bead.id.clone(),
            agent: claim.agent.id.clone(),
            generation: claim.agent.generation,
            branch: claim.branch.clone(),
            container,
        }),
        Err(e @ Error::Busy { .. }) if made.started => {
            // The agent runs and may already work; only its record could not be written.
            // Nothing is undone on a guess: patrol adopts the container (or takes its
            // done) once the database is free.
            tracing::warn!(
                "{} started for {}, but the town database stayed locked; `gt patrol` adopts it after the spawn timeout",
                claim.agent.id,
                claim.bead.id
            );
            Err(e)
        }
        Err(e) => {
            let undone = match undo(town, rt, &claim, &made, &e) {
                Ok(undone) => undone,
                Err(undo_err) => {
                    tracing::warn!(
                        "undoing the sling of {} stopped: {undo_err}; `gt patrol` finishes it after the spawn timeout",
                        claim.bead.id
                    );
                    format!("undo stopped ({undo_err}); `gt patrol` finishes it")
                }
            };
            match e {
                Error::Interrupted { signal, .. } => Err(Error::Interrupted { signal, undone }),
                e => Err(e),
            }
        }
    }
}

/// What steps 2–3 created, so undo removes exactly that.
#[derive(Default)]
struct Made {
    branch: bool,
    worktree: bool,
    container: Option<String>,
    /// The container was started: the agent may have produced work, so undo keeps the
    /// branch (with anything left uncommitted committed on it) for the next sling.
    started: bool,
    /// Git lock files a dead attempt left in the reused worktree, now removed.
    stale_locks: Vec<PathBuf>,
}

/// Step 1: in one transaction, check the bead is claimable, pick a polecat, bump its
/// generation, insert the dispatch and hook the bead. `Err(Slung::Queued)` when full.
fn claim(town: &mut Town, bead_id: &str, opts: &SlingOptions) -> Result<Result<Claim, Slung>> {
    let root = town.root.clone();
    town.db.write(|tx| {
        let bead = beads::get(tx, bead_id).map_err(|e| tx.err(e))?.ok_or_else(|| super::bead::not_found(bead_id))?;
        check_claimable(tx, &bead)?;
        if crate::state::breaker_open(tx).map_err(|e| tx.err(e))? {
            return Err(Error::conflict(
                "the circuit breaker is open: new dispatches are paused",
                Some("see `gt status`; `gt resume` closes it".to_string()),
            ));
        }
        if let Some(d) = super::drain::active_tx(tx, &bead.rig)? {
            return Err(super::drain::refused(&bead.id, &d));
        }
        let rig = rigs::get(tx, &bead.rig).map_err(|e| tx.err(e))?.ok_or_else(|| {
            Error::not_found(format!("rig {}", bead.rig), Some("`gt rig list` shows the rigs; `gt rig add` adds one".to_string()))
        })?;
        if agents::live_count(tx, &rig.name).map_err(|e| tx.err(e))? >= rig.max_polecats {
            // Its place in the queue: after every bead queued before it, even within
            // the same millisecond (the queue is served by this time, then by id).
            let last: Option<i64> = tx
                .query_row(
                    "SELECT max(queued_at) FROM beads WHERE rig = ?1 AND status = 'open'",
                    [&rig.name],
                    |r| r.get(0),
                )
                .map_err(|e| tx.err(e))?;
            let now = now_ms().max(last.map_or(0, |l| l + 1));
            if beads::set_queued(tx, &bead.id, now).map_err(|e| tx.err(e))? {
                tx.event("bead.queued", &bead.id, serde_json::json!({ "rig": rig.name, "max_polecats": rig.max_polecats }))?;
            } else {
                tx.event("bead.still_queued", &bead.id, serde_json::json!({ "rig": rig.name }))?;
            }
            return Ok(Err(Slung::Queued { bead: bead.id.clone(), rig: rig.name.clone() }));
        }
        // A polecat nuked while it held this bead kept its worktree (unsaved work) and
        // branch: the bead continues there, with that polecat revived.
        let revived = match (&opts.branch, &bead.branch) {
            (None, Some(b)) => agents::on_branch(tx, &rig.name, b)
                .map_err(|e| tx.err(e))?
                .filter(|h| h.state == "nuked" && opts.polecat.as_deref().is_none_or(|p| p == h.name)),
            _ => None,
        };
        let agent = match revived {
            Some(a) => {
                tx.event("polecat.revived", &a.id, serde_json::json!({ "bead": bead.id, "worktree": a.worktree }))?;
                a
            }
            None => pick_polecat(tx, &rig.name, opts.polecat.as_deref())?,
        };
        let resume = opts.branch.is_none() && bead.branch.is_some();
        let branch = opts
            .branch
            .clone()
            .or_else(|| bead.branch.clone())
            .unwrap_or_else(|| format!("polecat/{}/{}", agent.name, bead.id));
        if let Some(holder) = agents::on_branch(tx, &rig.name, &branch).map_err(|e| tx.err(e))?
            && holder.id != agent.id
        {
            return Err(branch_in_use(&branch, &holder.id));
        }
        let worktree = super::worktree_path(&root, &rig.name, &agent.name);
        let now = now_ms();
        let generation = agent.generation + 1;
        let token = random_hex(16);
        let dispatch = dispatches::insert(tx, &agent.id, &bead.id, generation, &token, &branch, now)
            .map_err(|e| tx.err(e))?;
        let wt = worktree.to_string_lossy().into_owned();
        cas_update(
            tx,
            &Versioned { table: "agents", kind: "polecat", key_col: "id", key: &agent.id },
            agent.version,
            &[
                ("state", &"spawning"),
                ("bead", &bead.id),
                ("branch", &branch),
                ("worktree", &wt),
                ("generation", &generation),
                ("dispatch", &dispatch),
                ("updated_at", &now),
            ],
        )
        .map_err(|e| unique_to_conflict(e, &branch))?;
        let none: Option<i64> = None;
        cas_update(
            tx,
            &Versioned { table: "beads", kind: "bead", key_col: "id", key: &bead.id },
            bead.version,
            &[("status", &"hooked"), ("queued_at", &none), ("branch", &branch), ("updated_at", &now)],
        )?;
        tx.event(
            "sling.claimed",
            &bead.id,
            serde_json::json!({ "agent": agent.id, "generation": generation, "branch": branch, "dispatch": dispatch }),
        )?;
        let agent = agents::get(tx, &agent.id).map_err(|e| tx.err(e))?.ok_or_else(|| Error::Other("agent vanished".into()))?;
        let bead = beads::get(tx, &bead.id).map_err(|e| tx.err(e))?.ok_or_else(|| super::bead::not_found(bead_id))?;
        Ok(Ok(Claim { rig, bead, agent, dispatch, token, branch, worktree, resume, requeue: false, queued_since: None }))
    })
}

fn check_claimable(tx: &Tx, bead: &beads::Bead) -> Result<()> {
    match bead.status.as_str() {
        "open" => Ok(()),
        "hooked" | "in_progress" => {
            let holder = agents::holding(tx, &bead.id).map_err(|e| tx.err(e))?;
            Err(match holder {
                Some(a) => Error::conflict(
                    format!(
                        "bead {} is already hooked by {} (generation {})",
                        bead.id, a.id, a.generation
                    ),
                    Some(format!(
                        "it is being worked on: `gt peek {}` shows how; `gt polecat nuke {}` stops it and reopens the bead",
                        a.id, a.id
                    )),
                ),
                None => Error::conflict(
                    format!("bead {} is already hooked", bead.id),
                    Some("its sling is under way or was cut short: the next `gt patrol` finishes or undoes it".to_string()),
                ),
            })
        }
        "done" => Err(
            Error::usage(format!("bead {} is done; it stays done", bead.id)).with_hint(format!(
                "for more work on it, create a new bead: `gt bead create --rig {} TITLE`",
                bead.rig
            )),
        ),
        other => Err(Error::usage(format!(
            "bead {} is {other}; only open beads can be slung",
            bead.id
        ))
        .with_hint(format!(
            "`gt bead reopen {}` gives it another go (`gt bead show {}` shows how it ended)",
            bead.id, bead.id
        ))),
    }
}

fn pick_polecat(tx: &Tx, rig: &str, wanted: Option<&str>) -> Result<agents::Agent> {
    if let Some(name) = wanted {
        let id = agents::id(rig, name);
        match agents::get(tx, &id).map_err(|e| tx.err(e))? {
            Some(a) if a.state == "idle" && a.bead.is_none() => return Ok(a),
            Some(a) => {
                return Err(Error::conflict(
                    format!(
                        "polecat {id} is {}{}",
                        a.state,
                        a.bead
                            .map(|b| format!(" with bead {b}"))
                            .unwrap_or_default()
                    ),
                    Some(
                        "choose another --polecat, or leave it out to use any idle one".to_string(),
                    ),
                ));
            }
            None => {
                agents::insert(tx, rig, name, now_ms()).map_err(|e| tx.err(e))?;
                return agents::get(tx, &id)
                    .map_err(|e| tx.err(e))?
                    .ok_or_else(|| Error::Other("agent vanished".into()));
            }
        }
    }
    if let Some(a) = agents::idle(tx, rig, None).map_err(|e| tx.err(e))? {
        return Ok(a);
    }
    let name = agents::fresh_name(tx, rig).map_err(|e| tx.err(e))?;
    agents::insert(tx, rig, &name, now_ms()).map_err(|e| tx.err(e))?;
    agents::get(tx, &agents::id(rig, &name))
        .map_err(|e| tx.err(e))?
        .ok_or_else(|| Error::Other("agent vanished".into()))
}

fn branch_in_use(branch: &str, holder: &str) -> Error {
    Error::conflict(
        format!("branch {branch} is in use by {holder}"),
        Some("choose another --branch; gt never shares a branch between agents".to_string()),
    )
}

fn unique_to_conflict(e: Error, branch: &str) -> Error {
    match e {
        Error::Database { msg, .. } if msg.contains("UNIQUE") => {
            branch_in_use(branch, "another agent")
        }
        e => e,
    }
}

/// Steps 2–4. Records in `made` what it created, for undo.
fn spawn(town: &mut Town, rt: &dyn Runtime, c: &Claim, made: &mut Made) -> Result<String> {
    // 2. Worktree on the branch.
    prepare_worktree(town, c, made)?;
    if !made.stale_locks.is_empty() {
        let paths: Vec<String> = made
            .stale_locks
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        tracing::warn!(
            "removed git locks and unfinished operations (rebase, merge) a dead attempt left: {}",
            paths.join(", ")
        );
        town.db.write(|tx| {
            tx.event(
                "git.stale_locks_removed",
                &c.bead.id,
                serde_json::json!({ "agent": c.agent.id, "generation": c.agent.generation, "paths": paths }),
            )
        })?;
    }
    crate::interrupt::step("sling.after_worktree")?;

    // 3. Assignment, then the container (adopting our own from a crashed attempt).
    let mailbox = super::workspace::places(town, &c.rig.name, &c.agent.name).box_dir;
    let assignment = Assignment {
        rig: c.rig.name.clone(),
        agent: c.agent.id.clone(),
        bead: c.bead.id.clone(),
        title: c.bead.title.clone(),
        body: c.bead.body.clone(),
        branch: c.branch.clone(),
        worktree: c.worktree.to_string_lossy().into_owned(),
        generation: c.agent.generation,
        token: c.token.clone(),
        attempt: c.bead.attempts + 1,
        history: history(town, c)?,
        returned: returned(town, &c.bead.id)?,
    };
    assignment.write(&mailbox)?;
    // The rig's secrets, as read-only files for this dispatch only (never in the spec).
    super::secret::copy_for_agent(town, &c.rig.name, &c.agent.name, &c.rig.secrets)?;
    crate::interrupt::step("sling.after_assignment")?;
    let spec = container_spec(town, c)?;
    let id = create_or_adopt(rt, &spec, c.agent.generation)?;
    made.container = Some(id.clone());
    // A Swarm service runs from its creation: from here on the agent may have worked.
    made.started = rt.starts_on_create();
    crate::interrupt::step("sling.after_create")?;

    // 4. Start; mark running only if our generation is still current.
    crate::interrupt::step("sling.before_start")?;
    rt.start(&id)?;
    made.started = true;
    crate::interrupt::step("sling.after_start")?;
    match mark_running(town, c, &id)? {
        Started::Ours => Ok(id),
        Started::Superseded(why) => {
            // Another writer owns the agent now: this container must not work.
            rt.remove(&id, Duration::from_secs(0))?;
            made.container = None;
            Err(Error::conflict(
                format!("{why} while this sling started it"),
                Some(format!(
                    "`gt bead show {}` says where the bead is now",
                    c.bead.id
                )),
            ))
        }
    }
}

/// What step 4 found when it came to mark the agent running.
enum Started {
    /// Our generation is still current: marked running now, or moved on by our own
    /// container already (a fast agent said done, or patrol adopted or buried it).
    Ours,
    /// Someone else won: a newer generation, or a human nuked the polecat. Says who.
    Superseded(String),
}

/// Step 4's transaction. A state change made by our own generation is progress, not a
/// conflict: the dispatch is started either way, and its container and attempt are
/// recorded once (whoever records the container counts the attempt).
fn mark_running(town: &mut Town, c: &Claim, id: &str) -> Result<Started> {
    town.db.write(|tx| {
        let Some(a) = agents::get(tx, &c.agent.id).map_err(|e| tx.err(e))? else {
            return Ok(Started::Superseded(format!("{} was removed", c.agent.id)));
        };
        let d = dispatches::get(tx, c.dispatch).map_err(|e| tx.err(e))?;
        let nuked = d.as_ref().and_then(|d| d.reason.as_deref()) == Some("nuked");
        let why = if a.generation != c.agent.generation {
            Some(format!("{} moved on to generation {} (this sling started generation {})", a.id, a.generation, c.agent.generation))
        } else if a.state == "nuked" || nuked {
            Some(format!("{} was nuked", a.id))
        } else {
            None
        };
        if let Some(why) = why {
            tx.event("sling.superseded", &c.bead.id, serde_json::json!({ "agent": a.id, "generation": c.agent.generation, "now": a.generation, "state": a.state }))?;
            return Ok(Started::Superseded(why));
        }
        let now = now_ms();
        if a.state == "spawning" {
            tx.execute(
                "UPDATE agents SET state = 'running', updated_at = ?2, version = version + 1 WHERE id = ?1",
                rusqlite::params![a.id, now],
            )
            .map_err(|e| tx.err(e))?;
        }
        if d.and_then(|d| d.container_id).is_none() {
            tx.execute(
                "UPDATE beads SET status = CASE status WHEN 'hooked' THEN 'in_progress' ELSE status END,
                 attempts = attempts + 1, updated_at = ?2, version = version + 1 WHERE id = ?1",
                rusqlite::params![c.bead.id, now],
            )
            .map_err(|e| tx.err(e))?;
            dispatches::set_container(tx, c.dispatch, id).map_err(|e| tx.err(e))?;
        }
        tx.event("sling.started", &c.bead.id, serde_json::json!({ "agent": a.id, "generation": a.generation, "container": id, "state": a.state }))?;
        Ok(Started::Ours)
    })
}

fn prepare_worktree(town: &Town, c: &Claim, made: &mut Made) -> Result<()> {
    let fresh = match town.config.workspace {
        WorkspaceMode::Mount => make_worktree(town, c, made)?,
        WorkspaceMode::Clone => make_branch(town, c, made)?,
    };
    made.stale_locks = super::workspace::prepare(
        town,
        &c.rig.name,
        &c.agent.name,
        &c.worktree,
        &c.branch,
        fresh,
    )?;
    Ok(())
}

/// The worktree itself; true when it was made now (false: an earlier attempt's, reused).
fn make_worktree(town: &Town, c: &Claim, made: &mut Made) -> Result<bool> {
    let _lock = crate::git::lock(&town.repo_dir(&c.rig.name))?;
    let repo = Repository::open(town.repo_dir(&c.rig.name))?;
    let exists = crate::git::branch_exists(&repo, &c.branch);
    // The town moved since this polecat's worktree was made: git's links name the old
    // place, and the worktree would look like nobody's.
    if crate::git::repair_worktree(&repo, &c.worktree)? {
        tracing::info!(
            "worktree {} was made where the town was before it moved; its git links now name where it is",
            c.worktree.display()
        );
    }
    if let Some(at) = crate::git::checked_out_at(&repo, &c.branch)? {
        // Our own worktree from an earlier attempt of this polecat: reuse it, without the
        // git locks the dead attempt may have left (no process of this agent lives now).
        if same_path(&at, &c.worktree) && c.resume {
            if crate::git::worktree_complete(&repo, &c.worktree, &c.branch)
                || worked_in_before(town, c)?
            {
                return Ok(false);
            }
            // Half-made: a sling killed (or a disk filled) mid-checkout, before any agent
            // ran in it. Its index would commit most of the repository as deleted: make
            // it again from the branch, which holds nothing an agent made.
            crate::git::remove_worktree(&repo, &c.worktree)?;
            tracing::warn!(
                "worktree {} was left half-made by an interrupted sling; made it again",
                c.worktree.display()
            );
            made.worktree = true;
            crate::git::add_worktree(&repo, &c.worktree, &c.branch, &c.rig.default_branch, true)?;
            return Ok(true);
        }
        return Err(Error::conflict(
            format!("branch {} is checked out at {}", c.branch, at.display()),
            Some("choose another --branch; gt never shares a branch between worktrees".to_string()),
        ));
    }
    if exists && !c.resume {
        return Err(Error::conflict(
            format!("branch {} already exists in rig {}", c.branch, c.rig.name),
            Some("choose another --branch; gt never reuses a branch silently".to_string()),
        ));
    }
    if c.worktree.exists() {
        return Err(Error::conflict(
            format!(
                "{} already exists (a worktree kept with unsaved work?)",
                c.worktree.display()
            ),
            Some(format!(
                "look at it, then `gt polecat nuke {} --force` to drop it",
                c.agent.id
            )),
        ));
    }
    // Recorded before the add: whatever part of it happens, undo removes.
    made.branch = !exists;
    made.worktree = true;
    crate::git::add_worktree(&repo, &c.worktree, &c.branch, &c.rig.default_branch, exists)?;
    Ok(true)
}

/// Clone mode: only the branch, on the host; the agent clones it inside its container
/// (from `gt serve`) and the host path of its worktree is never made. True when the
/// branch was made now.
fn make_branch(town: &Town, c: &Claim, made: &mut Made) -> Result<bool> {
    let _lock = crate::git::lock(&town.repo_dir(&c.rig.name))?;
    let repo = Repository::open(town.repo_dir(&c.rig.name))?;
    if let Some(at) = crate::git::checked_out_at(&repo, &c.branch)? {
        return Err(Error::conflict(
            format!("branch {} is checked out at {}", c.branch, at.display()),
            Some("choose another --branch; gt never shares a branch between worktrees".to_string()),
        ));
    }
    if crate::git::branch_exists(&repo, &c.branch) {
        if !c.resume {
            return Err(Error::conflict(
                format!("branch {} already exists in rig {}", c.branch, c.rig.name),
                Some("choose another --branch; gt never reuses a branch silently".to_string()),
            ));
        }
        return Ok(false);
    }
    let base = crate::git::branch_head(&repo, &c.rig.default_branch)?.ok_or_else(|| {
        Error::git(format!(
            "rig {} has no branch {}",
            c.rig.name, c.rig.default_branch
        ))
    })?;
    made.branch = true;
    repo.branch(
        &c.branch,
        &repo.find_commit(git2::Oid::from_str(&base)?)?,
        false,
    )?;
    Ok(true)
}

/// Whether an earlier dispatch of this bead by this agent started a container: then its
/// worktree holds work, even without the completeness marker (made by an older gt).
fn worked_in_before(town: &Town, c: &Claim) -> Result<bool> {
    Ok(dispatches::for_bead(town.db.conn(), &c.bead.id)
        .map_err(|e| town.db_err(e))?
        .iter()
        .any(|d| d.id != c.dispatch && d.agent == c.agent.id && d.container_id.is_some()))
}

fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// Step 1 of a patrol re-dispatch: the dead agent gets a new generation on the same
/// worktree and branch (`resume`: the branch exists; otherwise step 2 makes it).
/// None when someone else moved the agent first.
pub fn claim_redispatch(
    town: &mut Town,
    dead: &agents::Agent,
    resume: bool,
) -> Result<Option<Claim>> {
    let root = town.root.clone();
    town.db.write(|tx| {
        let Some(a) = agents::get(tx, &dead.id).map_err(|e| tx.err(e))? else { return Ok(None) };
        let (Some(bead_id), Some(branch)) = (a.bead.clone(), a.branch.clone()) else { return Ok(None) };
        if a.state != "dead" || a.generation != dead.generation {
            return Ok(None);
        }
        let bead = beads::get(tx, &bead_id).map_err(|e| tx.err(e))?.ok_or_else(|| super::bead::not_found(&bead_id))?;
        let rig = rigs::get(tx, &a.rig).map_err(|e| tx.err(e))?.ok_or_else(|| Error::not_found(format!("rig {}", a.rig), None))?;
        // Under the town's current root: the recorded path may be where the town was.
        let worktree = super::worktree_path(&root, &a.rig, &a.name);
        let wt = worktree.to_string_lossy().into_owned();
        let now = now_ms();
        let generation = a.generation + 1;
        let token = random_hex(16);
        let dispatch = dispatches::insert(tx, &a.id, &bead.id, generation, &token, &branch, now).map_err(|e| tx.err(e))?;
        tx.execute(
            "UPDATE agents SET state = 'spawning', generation = ?2, dispatch = ?3, worktree = ?5, updated_at = ?4, version = version + 1 WHERE id = ?1",
            rusqlite::params![a.id, generation, dispatch, now, wt],
        )
        .map_err(|e| tx.err(e))?;
        tx.execute(
            "UPDATE beads SET status = 'hooked', updated_at = ?2, version = version + 1 WHERE id = ?1",
            rusqlite::params![bead.id, now],
        )
        .map_err(|e| tx.err(e))?;
        tx.event("sling.redispatched", &bead.id, serde_json::json!({ "agent": a.id, "generation": generation, "attempt": bead.attempts + 1 }))?;
        let agent = agents::get(tx, &a.id).map_err(|e| tx.err(e))?.ok_or_else(|| Error::Other("agent vanished".into()))?;
        let bead = beads::get(tx, &bead.id).map_err(|e| tx.err(e))?.ok_or_else(|| super::bead::not_found(&bead_id))?;
        Ok(Some(Claim { rig, bead, agent, dispatch, token, branch, worktree, resume, requeue: true, queued_since: None }))
    })
}

/// Why the bead's latest merge request was sent back, if it was: the agent's brief.
fn returned(town: &Town, bead: &str) -> Result<Option<crate::agent::Returned>> {
    use crate::state::merge_requests::{self, MrState};
    let Some(mr) = merge_requests::latest(town.db.conn(), bead).map_err(|e| town.db_err(e))? else {
        return Ok(None);
    };
    if !matches!(
        mr.state,
        MrState::Conflict | MrState::Failed | MrState::Rejected
    ) {
        return Ok(None);
    }
    Ok(Some(crate::agent::Returned {
        merge_request: mr.id,
        state: mr.state.as_str().to_string(),
        reason: mr.reason.unwrap_or_default(),
        target: mr.target.unwrap_or_default(),
        target_commit: mr.base,
    }))
}

/// Earlier dispatches of the bead with their endings and checkpoints.
fn history(town: &Town, c: &Claim) -> Result<Vec<crate::agent::Attempt>> {
    let conn = town.db.conn();
    let mut out = Vec::new();
    for d in dispatches::for_bead(conn, &c.bead.id).map_err(|e| town.db_err(e))? {
        if d.id == c.dispatch {
            continue;
        }
        out.push(crate::agent::Attempt {
            checkpoints: crate::state::checkpoints::for_dispatch(conn, d.id)
                .map_err(|e| town.db_err(e))?,
            agent: d.agent,
            generation: d.generation,
            started_at: d.started_at,
            ended_at: d.ended_at,
            ending: d.reason,
            exit_code: d.exit_code,
            oom: d.oom,
        });
    }
    Ok(out)
}

pub fn container_name(town_id: &str, rig: &str, polecat: &str) -> String {
    format!("gt-{town_id}-{rig}-{polecat}")
}

fn container_spec(town: &Town, c: &Claim) -> Result<ContainerSpec> {
    let exe = std::env::current_exe().map_err(|e| Error::io("locating the gt binary", e))?;
    let wt = c.worktree.to_string_lossy().into_owned();
    let labels = BTreeMap::from([
        (LABEL_TOWN.to_string(), town.id.clone()),
        (LABEL_RIG.to_string(), c.rig.name.clone()),
        (LABEL_AGENT.to_string(), c.agent.name.clone()),
        (LABEL_GENERATION.to_string(), c.agent.generation.to_string()),
    ]);
    let clone = town.config.workspace == WorkspaceMode::Clone;
    let (mut binds, mut tmpfs, git_env) = if clone {
        // gt itself comes from the image.
        let (tmpfs, env) = super::workspace::clone_mounts(&c.worktree);
        (Vec::new(), tmpfs, env)
    } else {
        let (mut binds, tmpfs, git_env) =
            super::workspace::mounts(town, &c.rig.name, &c.agent.name, &c.worktree, &c.branch);
        binds.extend(super::workspace::gt_binds(town, &exe)?);
        (binds, tmpfs, git_env)
    };
    if !c.rig.secrets.is_empty() && !clone {
        // Values stay in files: the container's config (`docker inspect`) names none.
        binds.push(Bind {
            source: super::secret::agent_dir(town, &c.rig.name, &c.agent.name)
                .to_string_lossy()
                .into_owned(),
            target: super::secret::MOUNT.into(),
            read_only: true,
        });
    }
    tmpfs.push(Tmpfs {
        target: "/tmp".into(),
        options: "size=1g,mode=1777".into(),
    });
    let mut env = vec![
        ("GT_AGENT".to_string(), c.agent.id.clone()),
        ("GT_GENERATION".to_string(), c.agent.generation.to_string()),
        ("GT_BEAD".to_string(), c.bead.id.clone()),
        ("GT_BRANCH".to_string(), c.branch.clone()),
        (
            "GT_MAILBOX".to_string(),
            match clone {
                true => crate::agent::remote::MAILBOX,
                false => crate::agent::MAILBOX,
            }
            .to_string(),
        ),
        ("HOME".to_string(), "/tmp".to_string()),
        // Docker's init (tini) passes a stop signal to the whole process group, so the
        // agent command gets it too, not only its supervisor `gt agent run`.
        ("TINI_KILL_PROCESS_GROUP".to_string(), "1".to_string()),
        ("GIT_AUTHOR_NAME".to_string(), c.agent.id.clone()),
        (
            "GIT_AUTHOR_EMAIL".to_string(),
            agents::email(&c.rig.name, &c.agent.name),
        ),
        ("GIT_COMMITTER_NAME".to_string(), c.agent.id.clone()),
        (
            "GIT_COMMITTER_EMAIL".to_string(),
            agents::email(&c.rig.name, &c.agent.name),
        ),
    ];
    env.extend(git_env);
    if clone {
        let url = town.config.serve.url.clone().ok_or_else(|| {
            Error::usage("runtime.workspace = \"clone\" needs serve.url in gt.toml")
        })?;
        env.push(("GT_ENDPOINT".to_string(), url));
        env.push((
            "GT_ENDPOINT_PATIENCE".to_string(),
            format!("{}ms", town.config.serve.patience.as_millis()),
        ));
        // Public: the one root the agent trusts for its endpoint.
        env.push((
            "GT_ENDPOINT_CA".to_string(),
            super::pki::ca_pem(&town.root)?,
        ));
    }
    // The rig's own (non-secret) environment; gt's variables above win over it.
    for (k, v) in &c.rig.env {
        if !env.iter().any(|(have, _)| have == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    let (uid, gid) = super::workspace::agent_user();
    Ok(ContainerSpec {
        name: container_name(&town.id, &c.rig.name, &c.agent.name),
        image: c.rig.image.clone(),
        cmd: vec![
            "gt".into(),
            "agent".into(),
            "run".into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            c.rig.command.clone(),
        ],
        env,
        labels,
        binds,
        tmpfs,
        read_only_root: true,
        workdir: wt,
        user: format!("{uid}:{gid}"),
        memory: c.rig.memory,
        cpus: c.rig.cpus,
        pids: c.rig.pids,
        network: (c.rig.network != "default").then(|| c.rig.network.clone()),
        placement: c.rig.placement.clone(),
        // The dispatch's credential (for `gt serve`, and for its requests): never in a
        // service's spec.
        secret_env: vec![("GT_TOKEN".to_string(), c.token.clone())],
        init: true,
    })
}

/// Create the container; a name clash with an older generation removes the old one,
/// with the same generation adopts it (a retried step 3 is idempotent).
pub fn create_or_adopt(rt: &dyn Runtime, spec: &ContainerSpec, generation: i64) -> Result<String> {
    for _ in 0..3 {
        match rt.create(spec) {
            Ok(id) => return Ok(id),
            Err(CreateError::Other(e)) => return Err(e),
            Err(CreateError::NameInUse) => match rt.inspect(&spec.name)? {
                Some(old) if old.generation() == Some(generation) => return Ok(old.id),
                Some(old) => rt.remove(&old.id, Duration::from_secs(0))?,
                None => {}
            },
        }
    }
    Err(Error::conflict(
        format!("container name {} stays in use", spec.name),
        Some(
            "the next `gt patrol` removes this town's stale containers; then `gt sling` it again"
                .to_string(),
        ),
    ))
}

/// Undo steps 1–3 after a failure, and say what was undone. Only while the claim's
/// generation is still current: a newer one owns the worktree and branch. Once the
/// container has started, the agent may have produced work: its branch is kept (with
/// anything uncommitted committed on it) and the bead remembers it, so the next sling
/// continues there. Where the container cannot be removed, nothing more is touched and
/// patrol finishes the dispatch after the spawn timeout.
fn undo(
    town: &mut Town,
    rt: &dyn Runtime,
    c: &Claim,
    made: &Made,
    cause: &Error,
) -> Result<String> {
    let mut undone = Vec::new();
    let now = agents::get(town.db.conn(), &c.agent.id).map_err(|e| town.db_err(e))?;
    match now {
        Some(a) if a.generation == c.agent.generation && a.state == "spawning" => {}
        Some(a) => {
            return Ok(format!(
                "nothing undone: {} is {} at generation {} now",
                a.id, a.state, a.generation
            ));
        }
        None => return Ok("nothing undone".into()),
    }
    if let Some(id) = &made.container {
        rt.remove(id, Duration::from_secs(0))?;
        undone.push(format!("removed container {}", short(id)));
    }
    // No container of this generation runs any more: its copy of the secrets goes.
    super::secret::remove_secrets(town, &c.rig.name, &c.agent.name)?;
    let keep_branch = made.started && (made.branch || made.worktree);
    if keep_branch {
        let mut a = c.agent.clone();
        a.worktree = Some(c.worktree.to_string_lossy().into_owned());
        a.branch = Some(c.branch.clone());
        // Imports what the agent committed, then removes the worktree unless it holds
        // uncommitted work.
        if super::done::retire_worktree(town, &a, None)? {
            undone.push(format!(
                "kept worktree {} (it holds uncommitted work)",
                c.worktree.display()
            ));
        } else {
            undone.push(format!("removed worktree {}", c.worktree.display()));
        }
        undone.push(format!("kept branch {} for the next sling", c.branch));
    } else if made.worktree || made.branch {
        let _lock = crate::git::lock(&town.repo_dir(&c.rig.name))?;
        let repo = Repository::open(town.repo_dir(&c.rig.name))?;
        if made.worktree {
            crate::git::remove_worktree(&repo, &c.worktree)?;
            super::workspace::remove_private(town, &c.rig.name, &c.agent.name)?;
            undone.push(format!("removed worktree {}", c.worktree.display()));
        }
        if made.branch {
            crate::git::delete_branch(&repo, &c.branch)?;
            undone.push(format!("deleted branch {}", c.branch));
        }
    }
    release_claim(town, c, keep_branch, &format!("spawn failed: {cause}"))?;
    undone.push(format!("bead {} is open again", c.bead.id));
    Ok(undone.join(", "))
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Revert a claim in the database: agent idle, bead open (keeping its branch only when
/// it is the bead's own from earlier work), dispatch ended with `reason`.
pub fn release_claim(town: &mut Town, c: &Claim, keep_branch: bool, reason: &str) -> Result<()> {
    town.db.write(|tx| {
        let Some(a) = agents::get(tx, &c.agent.id).map_err(|e| tx.err(e))? else { return Ok(()) };
        if a.generation != c.agent.generation {
            return tx.event("sling.undo_skipped", &c.bead.id, serde_json::json!({ "agent": a.id, "generation": c.agent.generation }));
        }
        let now = now_ms();
        agents::release(tx, &a.id, a.generation, false, now).map_err(|e| tx.err(e))?;
        let branch: Option<&str> = if c.resume || keep_branch { Some(&c.branch) } else { None };
        let queued: Option<i64> = c.requeue.then(|| c.queued_since.unwrap_or(now));
        tx.execute(
            "UPDATE beads SET status = 'open', branch = ?2, queued_at = ?4, updated_at = ?3, version = version + 1
             WHERE id = ?1 AND status IN ('hooked','in_progress')",
            rusqlite::params![c.bead.id, branch, now, queued],
        )
        .map_err(|e| tx.err(e))?;
        if crate::util::is_host_fault(reason) {
            // The host could not make it (its disk full or read-only): the agent never
            // ran, so no attempt of the bead is spent on it.
            tx.execute(
                "UPDATE beads SET attempts = attempts - 1, version = version + 1 WHERE id = ?1 AND attempts > 0",
                [&c.bead.id],
            )
            .map_err(|e| tx.err(e))?;
        }
        dispatches::end(tx, c.dispatch, now, None, false, reason).map_err(|e| tx.err(e))?;
        tx.event("sling.undone", &c.bead.id, serde_json::json!({ "agent": a.id, "generation": a.generation, "reason": reason }))
    })
}
