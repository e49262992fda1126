//! `gt doctor`: check the invariants of DESIGN.md "Crash points" on a live town.

use super::Town;
use crate::error::Result;
use crate::runtime::{LABEL_AGENT, LABEL_RIG, RunState, Runtime};
use crate::state::{agents, beads, dispatches, merge_requests};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub breaches: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
    /// Worth a look, not a breach (e.g. a branch that moved after its merge request).
    pub warnings: Vec<String>,
}

pub fn check(town: &Town, rt: Option<&dyn Runtime>) -> Result<Report> {
    let conn = town.db.conn();
    let err = |e| town.db_err(e);
    let all_agents = agents::list(conn, None).map_err(err)?;
    let mut checks = Vec::new();
    let mut warnings = Vec::new();

    // 1. Every hooked or in-progress bead has exactly one agent whose current dispatch is it.
    let mut b1 = Vec::new();
    for status in ["hooked", "in_progress"] {
        for b in beads::list(conn, None, Some(status)).map_err(err)? {
            let owners: Vec<&agents::Agent> = all_agents
                .iter()
                .filter(|a| a.bead.as_deref() == Some(&b.id))
                .collect();
            match owners.as_slice() {
                [a] => {
                    let d = a
                        .dispatch
                        .and_then(|id| dispatches::get(conn, id).ok().flatten());
                    if d.as_ref().map(|d| d.bead.as_str()) != Some(b.id.as_str()) {
                        b1.push(format!(
                            "bead {} is {status} but {}'s current dispatch is not it",
                            b.id, a.id
                        ));
                    }
                    if matches!(a.state.as_str(), "idle" | "nuked") {
                        b1.push(format!(
                            "bead {} is {status} but its agent {} is {}",
                            b.id, a.id, a.state
                        ));
                    }
                }
                [] => b1.push(format!("bead {} is {status} with no agent", b.id)),
                many => b1.push(format!("bead {} is held by {} agents", b.id, many.len())),
            }
        }
    }
    for a in &all_agents {
        if let Some(b) = &a.bead {
            let bead = beads::get(conn, b).map_err(err)?;
            if !bead.is_some_and(|x| x.status == "hooked" || x.status == "in_progress") {
                b1.push(format!(
                    "{} holds bead {b}, which is not hooked or in progress",
                    a.id
                ));
            }
        }
    }
    checks.push(Check {
        name: "one live owner per active bead",
        ok: b1.is_empty(),
        breaches: b1,
    });

    // 2. No two live agents share a branch or a worktree.
    let mut b2 = Vec::new();
    let mut seen: HashMap<String, &str> = HashMap::new();
    for a in all_agents.iter().filter(|a| a.state != "idle") {
        for key in [
            a.branch.as_ref().map(|b| format!("branch {}:{b}", a.rig)),
            a.worktree.as_ref().map(|w| format!("worktree {w}")),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(other) = seen.insert(key.clone(), &a.id) {
                b2.push(format!("{key} is shared by {other} and {}", a.id));
            }
        }
    }
    checks.push(Check {
        name: "no shared branch or worktree",
        ok: b2.is_empty(),
        breaches: b2,
    });

    // 3. Containers: one live container per agent, none of a stale generation.
    if let Some(rt) = rt {
        let mut b3 = Vec::new();
        let gens: HashMap<(String, String), (i64, String)> = all_agents
            .iter()
            .map(|a| {
                (
                    (a.rig.clone(), a.name.clone()),
                    (a.generation, a.state.clone()),
                )
            })
            .collect();
        let mut live: HashMap<(String, String), usize> = HashMap::new();
        for c in rt.list(&town.id)? {
            let key = (
                c.labels.get(LABEL_RIG).cloned().unwrap_or_default(),
                c.labels.get(LABEL_AGENT).cloned().unwrap_or_default(),
            );
            if c.state == RunState::Running {
                *live.entry(key.clone()).or_default() += 1;
                match gens.get(&key) {
                    Some((g, state))
                        if Some(*g) == c.generation() && state != "idle" && state != "nuked" => {}
                    _ => b3.push(format!(
                        "container {} runs generation {:?} of {}/{}, which is not current",
                        c.name,
                        c.generation(),
                        key.0,
                        key.1
                    )),
                }
            }
        }
        for (k, n) in live {
            if n > 1 {
                b3.push(format!("{}/{} has {n} live containers", k.0, k.1));
            }
        }
        checks.push(Check {
            name: "containers match current generations",
            ok: b3.is_empty(),
            breaches: b3,
        });
    } else {
        warnings.push("container and image checks skipped: no engine answers".into());
    }

    // Setup: the image new rigs get is on the engine (gt never pulls it); each rig's
    // image is on the engine and runs gt and the agent command's program (a short
    // container of it), and the secrets it names are set.
    let rigs = crate::state::rigs::all(conn).map_err(err)?;
    let default_image = &town.config.defaults.image;
    if let Some(rt) = rt
        && !rigs.iter().any(|r| &r.image == default_image)
        && let Ok(false) = rt.image_exists(default_image)
    {
        let build = if default_image == super::image::Kind::Base.default_image() {
            "`gt image build`".to_string()
        } else {
            format!("`gt image build --tag {default_image}`, or build your own")
        };
        warnings.push(format!(
            "the default image {default_image} (defaults.image, what `gt rig add` gives a new rig) is not on the engine: {build}"
        ));
    }
    for r in rigs {
        if let Some(rt) = rt {
            for miss in super::rig::check_setup(town, rt, &r) {
                warnings.push(format!("rig {}: {miss}", r.name));
            }
        }
        for s in &r.secrets {
            if !super::secret::exists(town, s) {
                warnings.push(format!(
                    "rig {}: secret {s} is not set: `gt secret set {s}` (its beads cannot be slung)",
                    r.name
                ));
            }
        }
    }

    // 4. Every done bead has a merge request whose commit is on its branch.
    let mut b4 = Vec::new();
    let mrs = merge_requests::list(conn, None).map_err(err)?;
    let mut repos: HashMap<String, Option<git2::Repository>> = HashMap::new();
    for b in beads::list(conn, None, Some("done")).map_err(err)? {
        let mine: Vec<_> = mrs.iter().filter(|m| m.bead == b.id).collect();
        let Some(mr) = mine.last() else {
            b4.push(format!("bead {} is done without a merge request", b.id));
            continue;
        };
        let repo = repos
            .entry(b.rig.clone())
            .or_insert_with(|| git2::Repository::open(town.repo_dir(&b.rig)).ok());
        let Some(repo) = repo else { continue };
        let head = crate::git::branch_head(repo, &mr.branch)?;
        match head {
            // `gt rig prune` deleted it once its commit was safe elsewhere.
            None if mr.pruned_at.is_some() => {}
            None => b4.push(format!(
                "bead {}: branch {} of its merge request is gone",
                b.id, mr.branch
            )),
            Some(h) if h == mr.commit => {}
            Some(_) => {
                if crate::git::is_merged_into(repo, &mr.commit, &mr.branch) {
                    warnings.push(format!(
                        "branch {} moved past the recorded commit of {}",
                        mr.branch, b.id
                    ));
                } else {
                    b4.push(format!(
                        "bead {}: commit {} is not on branch {}",
                        b.id, mr.commit, mr.branch
                    ));
                }
            }
        }
    }
    checks.push(Check {
        name: "done beads have their merge request",
        ok: b4.is_empty(),
        breaches: b4,
    });

    // 6. The merge queue: every merged request's commit is on its target, and no request
    // is testing without a live gate.
    let mut b6 = Vec::new();
    let gates: Option<Vec<String>> = match rt {
        Some(rt) => Some(
            rt.list(&town.id)?
                .into_iter()
                .filter(|c| {
                    c.labels.contains_key(super::mq::land::LABEL_GATE)
                        && matches!(
                            c.state,
                            RunState::Running | RunState::Created | RunState::Exited
                        )
                })
                .filter_map(|c| c.labels.get(super::mq::land::LABEL_GATE).cloned())
                .collect(),
        ),
        None => None,
    };
    for m in &mrs {
        let repo = repos
            .entry(m.rig.clone())
            .or_insert_with(|| git2::Repository::open(town.repo_dir(&m.rig)).ok());
        match m.state {
            merge_requests::MrState::Merged => {
                let (Some(repo), Some(c), Some(t)) = (repo.as_ref(), &m.merged_commit, &m.target) else {
                    continue;
                };
                if !crate::git::is_merged_into(repo, c, t) {
                    // Redone and landed again since: the later one speaks for the bead.
                    let redone = mrs.iter().any(|o| {
                        o.bead == m.bead
                            && o.id > m.id
                            && o.state == merge_requests::MrState::Merged
                            && o.merged_commit
                                .as_deref()
                                .is_some_and(|oc| crate::git::is_merged_into(repo, oc, t))
                    });
                    if redone {
                        continue;
                    }
                    let rewound = rewound_from(repo, c, t);
                    b6.push(match rewound {
                        Some(old) => format!(
                            "merge request {} ({}) was merged at {c}, which is no longer on {t}: the remote's {t} was rewound past it                              (gt follows it and does not land it again; the old head is kept at {old});                              `gt bead reopen {}` redoes the work",
                            m.id, m.bead, m.bead
                        ),
                        None => format!(
                            "merge request {} ({}) is merged, but {} is not on {t}",
                            m.id, m.bead, c
                        ),
                    });
                }
            }
            merge_requests::MrState::Testing if super::mq::land::refused(m).is_some() => {
                b6.push(format!(
                    "merge request {} ({}) cannot land: {}; let gt push there (or land it by hand), gt retries every pass",
                    m.id,
                    m.bead,
                    super::mq::land::refused(m).unwrap_or_default()
                ));
            }
            merge_requests::MrState::Testing => match (m.step.as_deref(), &gates) {
                (Some("gate" | "target-gate"), Some(live)) => {
                    if !live.contains(&m.id.to_string()) {
                        b6.push(format!(
                            "merge request {} ({}) is testing without a live gate",
                            m.id, m.bead
                        ));
                    }
                }
                (Some("gate" | "target-gate"), None) => {}
                (step, _) => warnings.push(format!(
                    "merge request {} ({}): its landing stopped at step {}; the next patrol pass (or `gt mq run`) resumes it",
                    m.id,
                    m.bead,
                    step.unwrap_or("none")
                )),
            },
            _ => {}
        }
    }
    checks.push(Check {
        name: "merged work is on its target; no test without a gate",
        ok: b6.is_empty(),
        breaches: b6,
    });

    // 5. No mail id stored twice, no request id applied twice (keys say so; count anyway).
    let dup = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map_err(err);
    let mut b5 = Vec::new();
    if dup("SELECT count(*) - count(DISTINCT id) FROM mail")? > 0 {
        b5.push("a mail id is stored twice".into());
    }
    if dup("SELECT count(*) - count(DISTINCT id) FROM requests")? > 0 {
        b5.push("a request id is applied twice".into());
    }
    if dup("SELECT count(*) - count(DISTINCT bead || commit_id) FROM merge_requests")? > 0 {
        b5.push("a merge request is recorded twice".into());
    }
    checks.push(Check {
        name: "no duplicate mail, requests or merge requests",
        ok: b5.is_empty(),
        breaches: b5,
    });

    // Agents' worktrees sit under the town: others on the machine must not reach them.
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(&town.root)
        && m.permissions().mode() & 0o077 != 0
    {
        warnings.push(format!(
            "the town {} is open to other users (mode {:o}): run `chmod 700 {}`",
            town.root.display(),
            m.permissions().mode() & 0o777,
            town.root.display()
        ));
    }

    // Not an invariant, but the most common reason a town stops recovering.
    let health = super::status::patrol_health(town)?;
    if let Some(w) = health.warning {
        warnings.push(w);
    } else if let Some(w) = nothing_runs_patrol(town, health.last_success, health.running)? {
        warnings.push(w);
    }

    // Agents that mount nothing of the host reach gt only through `gt serve`.
    if town.config.workspace == super::config::WorkspaceMode::Clone {
        let b = match super::serve::check_health(town, std::time::Duration::from_secs(3)) {
            Ok(_) => Vec::new(),
            // It answers, but with a certificate the town CA does not sign: said as it is.
            Err(why) if why.contains(" runs (gt ") => vec![format!("gt serve at {why}")],
            Err(why) => vec![format!(
                "gt serve does not answer ({why}): agents in clone mode can neither start nor report; run `gt serve`"
            )],
        };
        checks.push(Check {
            name: "the agents' endpoint answers",
            ok: b.is_empty(),
            breaches: b,
        });
    }

    Ok(Report {
        ok: checks.iter().all(|c| c.ok),
        checks,
        warnings,
    })
}

/// The rewound-target ref (`refs/gt/rewound/<target>/<old head>`) that still holds
/// `commit`: a rewind of the remote removed it from `target`.
fn rewound_from(repo: &git2::Repository, commit: &str, target: &str) -> Option<String> {
    let c = git2::Oid::from_str(commit).ok()?;
    let refs = repo
        .references_glob(&format!("refs/gt/rewound/{target}/*"))
        .ok()?;
    for r in refs.flatten() {
        if let (Some(name), Some(old)) = (r.name().ok(), r.target())
            && (old == c || repo.graph_descendant_of(old, c).unwrap_or(false))
        {
            return Some(name.to_string());
        }
    }
    None
}

/// Patrol is due every `patrol.interval` (cron: every minute): no successful pass for
/// three times that, and at least five minutes, means nothing runs it. Said only for a
/// town with a rig (a new, empty town has nothing to patrol yet).
fn nothing_runs_patrol(
    town: &Town,
    last_success: Option<i64>,
    running: bool,
) -> Result<Option<String>> {
    let rigs = crate::state::rigs::all(town.db.conn()).map_err(|e| town.db_err(e))?;
    if rigs.is_empty() || running {
        return Ok(None);
    }
    let due = (3 * crate::util::millis(town.config.patrol.interval)).max(5 * 60_000);
    let now = crate::util::now_ms();
    Ok(match last_success {
        Some(at) if now - at <= due => None,
        Some(at) => Some(format!(
            "nothing seems to run patrol: the last successful pass was {} ago; \
             `gt patrol install` runs it every minute from cron (or `gt patrol --watch`)",
            crate::util::format_span(now - at)
        )),
        None => Some(
            "nothing runs patrol: no pass has succeeded yet; `gt patrol install` runs it \
             every minute from cron (or `gt patrol --watch`)"
                .to_string(),
        ),
    })
}
