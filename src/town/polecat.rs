//! Polecats: list, nuke (stop, return the bead, keep the work), peek (recent output).

use super::Town;
use crate::error::{Error, Result};
use crate::runtime::{LABEL_AGENT, LABEL_RIG, Runtime};
use crate::state::{agents, dispatches};
use crate::util::{now_ms, validate_name};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct PolecatRow {
    pub rig: String,
    pub name: String,
    pub state: String,
    pub bead: Option<String>,
    pub branch: Option<String>,
    pub generation: i64,
    pub container: Option<String>,
    pub started: Option<i64>,
    /// When the agent was last heard from in its current dispatch (its latest applied
    /// request, else the dispatch's start), epoch ms.
    pub last_heard: Option<i64>,
    pub version: i64,
    /// Its current generation's container as the engine reports it now: running, exited,
    /// created, other or absent; null when the engine did not answer (then `state` is as
    /// last recorded, unverified).
    pub observed: Option<&'static str>,
    /// Why the polecat is in its state, in words: what ended it, how far its hand-over
    /// got, where its kept worktree is.
    pub why: String,
}

/// Every polecat (of `rig`), with its container as `engine` saw it.
pub fn list(
    town: &Town,
    rig: Option<&str>,
    engine: &super::status::Engine,
) -> Result<Vec<PolecatRow>> {
    if let Some(r) = rig {
        super::rig::get(town, r)?;
    }
    let conn = town.db.conn();
    let mut rows = Vec::new();
    for a in agents::list(conn, rig).map_err(|e| town.db_err(e))? {
        let d = match a.dispatch {
            Some(id) if a.bead.is_some() => {
                dispatches::get(conn, id).map_err(|e| town.db_err(e))?
            }
            _ => None,
        };
        let last_heard = match &d {
            Some(d) => Some(dispatches::last_heard(conn, d.id).map_err(|e| town.db_err(e))?),
            None => None,
        };
        let mut why = explain(town, &a, d.as_ref(), last_heard)?;
        // A task the swarm cannot place yet (no node with the memory, a constraint no
        // node meets) may wait for ever: say so now, not after a timeout.
        if a.state == "running"
            && let Some(w) = engine
                .container(&a.rig, &a.name, a.generation)
                .filter(|c| c.state == crate::runtime::RunState::Running)
                .and_then(|c| c.error.as_deref())
        {
            why = format!("{why}; not started yet: {w}");
        }
        rows.push(PolecatRow {
            observed: engine.container_state(&a.rig, &a.name, a.generation),
            why,
            last_heard,
            container: d
                .as_ref()
                .and_then(|d| d.container_id.as_ref())
                .map(|_| super::sling::container_name(&town.id, &a.rig, &a.name)),
            started: d.map(|d| d.started_at),
            rig: a.rig,
            name: a.name,
            state: a.state,
            bead: a.bead,
            branch: a.branch,
            generation: a.generation,
            version: a.version,
        });
    }
    Ok(rows)
}

fn explain(
    town: &Town,
    a: &agents::Agent,
    d: Option<&dispatches::Dispatch>,
    last_heard: Option<i64>,
) -> Result<String> {
    let conn = town.db.conn();
    Ok(match a.state.as_str() {
        "spawning" => {
            let now = crate::util::now_ms();
            let since = now - a.updated_at;
            if !super::patrol::spawn_overdue(town, a, now) {
                format!(
                    "starting its container ({} so far); if that sling was killed, patrol undoes it {} after it began",
                    crate::util::format_span(since),
                    crate::util::format_span(crate::util::millis(
                        town.config.defaults.spawn_timeout
                    ))
                )
            } else {
                format!(
                    "its sling stopped {} ago without finishing (gt killed?); the next `gt patrol` adopts its container or undoes the dispatch",
                    crate::util::format_span(since)
                )
            }
        }
        "running" => {
            let working = format!("working on {}", a.bead.as_deref().unwrap_or("-"));
            let now = crate::util::now_ms();
            match last_heard.and_then(|h| Some((h, super::patrol::quiet_for(town, h, now)?))) {
                Some((h, silence)) => format!(
                    "{working}; quiet for {} (nothing heard since {}); `gt peek {}`",
                    crate::util::format_span(silence),
                    crate::util::format_time(h),
                    a.id
                ),
                None => working,
            }
        }
        "finishing" => {
            let last = match d {
                Some(d) => crate::state::checkpoints::for_dispatch(conn, d.id)
                    .map_err(|e| town.db_err(e))?
                    .into_iter()
                    .rfind(|c| c.step != "note")
                    .map(|c| c.step),
                None => None,
            };
            format!(
                "handing its work over (done saga at: {})",
                last.as_deref().unwrap_or("requested")
            )
        }
        "dead" => {
            let ended = d
                .and_then(|d| d.reason.clone())
                .unwrap_or_else(|| "ended".into());
            let max = town.config.defaults.max_attempts as i64;
            let attempts = match &a.bead {
                Some(b) => crate::state::beads::get(conn, b)
                    .map_err(|e| town.db_err(e))?
                    .map_or(0, |b| b.attempts),
                None => 0,
            };
            let next = if attempts >= max {
                format!("all {max} attempts used; patrol gives the bead up")
            } else if crate::state::breaker_open(conn).map_err(|e| town.db_err(e))? {
                "the circuit breaker is open: no re-dispatch until `gt resume`".into()
            } else if let Some(d) = super::drain::active(town, &a.rig)? {
                format!("{} is drained: no re-dispatch until `gt resume`", d.what())
            } else {
                format!(
                    "patrol re-dispatches it after its backoff, as attempt {} of {max}",
                    attempts + 1
                )
            };
            format!("{ended}; {next}")
        }
        "nuked" => format!(
            "worktree {} kept with unsaved work; `gt sling` of its bead continues there, `gt polecat revive {} --force` drops it",
            a.worktree.as_deref().unwrap_or("-"),
            a.id
        ),
        _ => "-".into(),
    })
}

/// `rig/name` → (rig, name), both validated.
pub fn parse_address(addr: &str) -> Result<(String, String)> {
    let Some((rig, name)) = addr.split_once('/') else {
        return Err(Error::usage(format!("{addr:?} is not RIG/NAME"))
            .with_hint("e.g. `api/furiosa`; `gt polecat list` shows them"));
    };
    validate_name("rig", rig)?;
    validate_name("polecat", name)?;
    Ok((rig.to_string(), name.to_string()))
}

pub fn get(town: &Town, addr: &str) -> Result<agents::Agent> {
    let (rig, name) = parse_address(addr)?;
    agents::get(town.db.conn(), &agents::id(&rig, &name))
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| {
            Error::not_found(
                format!("polecat {addr}"),
                Some("`gt polecat list` shows them".into()),
            )
        })
}

#[derive(Debug, Serialize)]
pub struct Nuked {
    pub agent: String,
    pub containers_removed: usize,
    /// The bead that went back to `open`, if the agent held one.
    pub bead_reopened: Option<String>,
    /// "removed", "kept" (unsaved work, no --force) or "none".
    pub worktree: &'static str,
    pub worktree_path: Option<String>,
    /// What the worktree held that nothing else has: kept, or dropped with --force.
    pub unsaved: crate::git::Unsaved,
    pub branch_kept: Option<String>,
}

/// What a stopped agent's worktree and branch hold that exists nowhere else: its commits
/// are imported onto its branch first (so they are counted and kept), then its worktree
/// is compared with the branch, read-only. Uncommitted work that cannot be told counts.
pub fn unsaved_work(
    town: &Town,
    agent: &agents::Agent,
    worktree: &std::path::Path,
    default_branch: &str,
) -> Result<crate::git::Unsaved> {
    let repo = git2::Repository::open(town.repo_dir(&agent.rig))?;
    let Some(branch) = agent.branch.as_deref() else {
        return crate::git::unsaved(&repo, "", default_branch, Vec::new());
    };
    let uncommitted = match super::workspace::import(town, &agent.rig, &agent.name, branch) {
        Ok(head) => super::workspace::uncommitted(town, &agent.rig, &agent.name, worktree, &head)
            .unwrap_or_else(|| vec!["(the worktree could not be compared with its branch)".into()]),
        Err(e) => vec![format!("(the agent's commits were not imported: {e})")],
    };
    crate::git::unsaved(&repo, branch, default_branch, uncommitted)
}

pub fn nuke(town: &mut Town, rt: &dyn Runtime, addr: &str, force: bool) -> Result<Nuked> {
    let agent = get(town, addr)?;
    let rig = super::rig::get(town, &agent.rig)?;
    if agent.state == "finishing" && !force {
        return Err(Error::conflict(
            format!("{addr} is finishing: its done saga is handing its work over"),
            Some(format!(
                "`gt patrol` completes it; `gt polecat nuke {addr} --force` abandons the hand-over"
            )),
        ));
    }
    // 1. Containers first: no agent may keep working on a bead we hand back.
    let mut removed = 0;
    for c in rt.list(&town.id)? {
        if c.labels.get(LABEL_RIG) == Some(&agent.rig)
            && c.labels.get(LABEL_AGENT) == Some(&agent.name)
        {
            if let (Some(d), Some(bead)) = (agent.dispatch, agent.bead.as_deref())
                && c.generation() == Some(agent.generation)
            {
                // Stopped first, then read: what it says while stopping (a CLI's final
                // usage report) is kept too.
                super::transcript::stop_and_keep(
                    town,
                    rt,
                    &c.id,
                    &agent.rig,
                    bead,
                    d,
                    Duration::from_secs(2),
                )?;
            }
            rt.remove(&c.id, Duration::from_secs(2))?;
            removed += 1;
        }
    }
    fail::fail_point!("nuke.after_remove");
    super::secret::remove_secrets(town, &agent.rig, &agent.name)?;
    // 2. The worktree goes only when it holds nothing that exists nowhere else.
    // Found under the town's current root (a town moved since keeps working), never at
    // the path recorded when the worktree was made.
    let wt = town
        .agent_worktree(&agent)
        .map(|p| p.to_string_lossy().into_owned());
    let mut unsaved = crate::git::Unsaved::default();
    let mut worktree = "none";
    if let Some(path) = wt
        .as_deref()
        .map(std::path::Path::new)
        .filter(|p| p.exists())
    {
        unsaved = unsaved_work(town, &agent, path, &rig.default_branch)?;
        if unsaved.is_empty() || force {
            let _lock = crate::git::lock(&town.repo_dir(&agent.rig))?;
            let repo = git2::Repository::open(town.repo_dir(&agent.rig))?;
            // Its git links may still name the town's old place: pointed back here first,
            // so the removal touches nothing there.
            crate::git::repair_worktree(&repo, path)?;
            crate::git::remove_worktree(&repo, path)?;
            super::workspace::remove_private(town, &agent.rig, &agent.name)?;
            worktree = "removed";
        } else {
            worktree = "kept";
        }
    }
    // 3. The database: agent idle (or nuked, holding its kept worktree and branch), bead open.
    let kept = worktree == "kept";
    let bead_reopened = town.db.write(|tx| {
        let now = now_ms();
        let cur = agents::get(tx, &agent.id).map_err(|e| tx.err(e))?.ok_or_else(|| Error::not_found(format!("polecat {addr}"), None))?;
        if let Some(d) = cur.dispatch {
            dispatches::end(tx, d, now, None, false, "nuked").map_err(|e| tx.err(e))?;
        }
        let reopened = match &cur.bead {
            Some(b) => {
                let n = tx
                    .execute(
                        "UPDATE beads SET status = 'open', updated_at = ?2, version = version + 1
                         WHERE id = ?1 AND status IN ('hooked','in_progress')",
                        rusqlite::params![b, now],
                    )
                    .map_err(|e| tx.err(e))?;
                (n == 1).then(|| b.clone())
            }
            None => None,
        };
        agents::release(tx, &cur.id, cur.generation, kept, now).map_err(|e| tx.err(e))?;
        tx.event(
            "polecat.nuked",
            &cur.id,
            serde_json::json!({ "bead": reopened, "containers": removed, "worktree": worktree, "force": force }),
        )?;
        Ok(reopened)
    })?;
    Ok(Nuked {
        agent: agent.id,
        containers_removed: removed,
        bead_reopened,
        worktree,
        worktree_path: wt,
        unsaved,
        branch_kept: agent.branch,
    })
}

/// Make a nuked polecat's name work again: its kept worktree is removed when it holds
/// nothing unsaved (or with `force`), and the polecat becomes idle. Its branch stays.
pub fn revive(town: &mut Town, rt: &dyn Runtime, addr: &str, force: bool) -> Result<Nuked> {
    let agent = get(town, addr)?;
    if agent.state != "nuked" {
        return Err(Error::conflict(
            format!(
                "{addr} is {}; only a nuked polecat needs reviving",
                agent.state
            ),
            Some("`gt polecat list` shows every polecat's state".into()),
        ));
    }
    let n = nuke(town, rt, addr, force)?;
    if n.worktree == "kept" {
        return Err(Error::conflict(
            format!(
                "{addr} still keeps {} with unsaved work: {} uncommitted file(s), {} unpushed commit(s)",
                n.worktree_path.as_deref().unwrap_or("its worktree"),
                n.unsaved.uncommitted.len(),
                n.unsaved.unpushed_commits
            ),
            Some(format!(
                "save what you need from it, then `gt polecat revive {addr} --force` drops it"
            )),
        ));
    }
    Ok(n)
}

pub fn peek(town: &Town, rt: &dyn Runtime, addr: &str, lines: usize) -> Result<String> {
    let agent = get(town, addr)?;
    let name = super::sling::container_name(&town.id, &agent.rig, &agent.name);
    match rt.logs(&name, lines) {
        Err(Error::NotFound { .. }) => {
            // The container is gone: its kept transcript.
            let last =
                dispatches::last_of_agent(town.db.conn(), &agent.id).map_err(|e| town.db_err(e))?;
            last.and_then(|d| super::transcript::read(town, &agent.rig, &d.bead, d.id))
                .map(|t| super::transcript::last_lines(&t, lines))
                .ok_or_else(|| {
                    Error::not_found(
                        format!("output of {addr}"),
                        Some(format!(
                            "{addr} is {}; it has no container and no kept transcript",
                            agent.state
                        )),
                    )
                })
        }
        other => other,
    }
}
