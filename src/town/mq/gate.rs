//! Gates: a merge request's test command run on a host-only checkout of its candidate
//! (or of the target alone, to tell a bad change from a broken target), in a container
//! isolated as agents are. Started, watched and cleaned up here; `land.rs` decides.

use super::land::{Progress, Report, checkpoint, send_back, short, target_of};
use crate::error::{Error, Result};
use crate::runtime::{Bind, ContainerSpec, LABEL_RIG, LABEL_TOWN, RunState, Runtime, Tmpfs};
use crate::state::merge_requests::{self, MergeRequest, MrState};
use crate::state::rigs::Rig;
use crate::town::Town;
use crate::town::mail::MAYOR;
use crate::util::now_ms;
use git2::{Oid, Repository};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The label naming the merge request a gate container tests.
pub const LABEL_GATE: &str = "gt.gate";

/// The label naming which gate run of its merge request a container is.
const LABEL_GATE_RUN: &str = "gt.gate-run";

/// Lines of a failing gate's output that go back to the work (and into `gt prime`).
const GATE_TAIL_LINES: usize = 40;

/// Gate containers no landing waits for (its merge request moved on, or a pass died
/// between starting a new run and recording it) are removed with their secrets.
pub(super) fn sweep_gates(
    town: &Town,
    rt: &dyn Runtime,
    listed: Option<&[crate::runtime::Observed]>,
) -> Result<()> {
    let all = match listed {
        Some(l) => l.to_vec(),
        None => rt.list(&town.id)?,
    };
    let gates: Vec<crate::runtime::Observed> = all
        .into_iter()
        .filter(|c| c.labels.contains_key(LABEL_GATE))
        .collect();
    for c in gates {
        let (Some(rig), Some(id)) = (
            c.labels.get(LABEL_RIG),
            c.labels.get(LABEL_GATE).and_then(|g| g.parse::<i64>().ok()),
        ) else {
            continue;
        };
        let mr = merge_requests::get(town.db.conn(), id).map_err(|e| town.db_err(e))?;
        // By labels, not names: a runtime may name it otherwise (a swarm service).
        let awaited = mr.as_ref().is_some_and(|m| {
            m.state == MrState::Testing
                && matches!(m.step.as_deref(), Some("gate" | "target-gate"))
                && c.labels.get(LABEL_GATE_RUN) == Some(&m.gate_runs.to_string())
        });
        if !awaited {
            rt.remove(&c.id, Duration::from_secs(0))?;
            let _ = crate::town::secret::remove_secrets(town, rig, &format!(".gate-mr{id}"));
        }
    }
    Ok(())
}

/// The gate container's name: one per merge request and run.
fn gate_name(town: &Town, rig: &str, mr: i64, run: i64) -> String {
    // A `.` never appears in gt's names: no polecat's container can be called this.
    format!("gt-{}-{rig}.gate-mr{mr}.{run}", town.id)
}

/// The host-only directory a gate run's files are checked out into.
fn scratch_dir(town: &Town, rig: &str, mr: i64) -> PathBuf {
    town.root.join("scratch").join(rig).join(format!("mr{mr}"))
}

/// Start a gate run: on the candidate, or (`target_only`) on the base alone.
pub(super) fn start_gate(
    town: &mut Town,
    rt: &dyn Runtime,
    rig: &Rig,
    mr: &MergeRequest,
    target_only: bool,
) -> Result<Gate> {
    crate::interrupt::step("mq.gate.before")?;
    let commit = if target_only {
        mr.base.clone()
    } else {
        mr.candidate.clone()
    }
    .ok_or_else(|| Error::Other(format!("merge request {} has no candidate", mr.id)))?;
    let run = mr.gate_runs + 1;
    let dir = scratch_dir(town, &rig.name, mr.id);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    // A plain checkout of the commit's files: no .git, nothing of the rig's repository.
    let repo = Repository::open(town.repo_dir(&rig.name))?;
    let tree = repo.find_commit(Oid::from_str(&commit)?)?.tree()?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.target_dir(&dir)
        .force()
        .recreate_missing(true)
        .update_index(false);
    if let Err(e) = repo.checkout_tree(tree.as_object(), Some(&mut co)) {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(Gate::Unbuildable(e.message().to_string()));
    }
    crate::town::workspace::hand_over(&dir)?;
    let spec = gate_spec(town, rig, mr, run, &dir)?;
    let id = match rt.create(&spec) {
        Ok(id) => id,
        Err(crate::runtime::CreateError::NameInUse) => {
            // An earlier pass made it and died before its checkpoint: start it over
            // (only a gate of this merge request is ever removed here).
            let ours = rt.inspect(&spec.name)?.is_some_and(|c| {
                c.labels.get(LABEL_GATE) == Some(&mr.id.to_string())
                    && c.labels.get(LABEL_TOWN) == Some(&town.id)
            });
            if !ours {
                return Err(Error::conflict(
                    format!(
                        "container name {} is taken by a container that is not this gate",
                        spec.name
                    ),
                    Some("remove or rename that container".into()),
                ));
            }
            rt.remove(&spec.name, Duration::from_secs(0))?;
            rt.create(&spec).map_err(|e| match e {
                crate::runtime::CreateError::Other(e) => e,
                crate::runtime::CreateError::NameInUse => {
                    Error::conflict(format!("container name {} stays in use", spec.name), None)
                }
            })?
        }
        Err(crate::runtime::CreateError::Other(e)) => return Err(e),
    };
    rt.start(&id)?;
    let step = if target_only { "target-gate" } else { "gate" };
    town.db.write(|tx| {
        tx.execute(
            "UPDATE merge_requests SET step = ?2, gate_runs = ?3, updated_at = ?4, version = version + 1
             WHERE id = ?1 AND state = 'testing'",
            rusqlite::params![mr.id, step, run, now_ms()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            "mr.gate_started",
            &mr.bead,
            serde_json::json!({ "mr": mr.id, "run": run, "on": if target_only { "target" } else { "candidate" }, "commit": commit }),
        )
    })?;
    crate::interrupt::step("mq.gate.after")?;
    Ok(Gate::Started)
}

/// Whether a gate run started.
pub(super) enum Gate {
    Started,
    /// The commit's files cannot be checked out (a path libgit2 refuses): why.
    Unbuildable(String),
}

fn gate_spec(
    town: &Town,
    rig: &Rig,
    mr: &MergeRequest,
    run: i64,
    dir: &std::path::Path,
) -> Result<ContainerSpec> {
    let command = rig.test_command.clone().unwrap_or_else(|| "true".into());
    let mut binds = vec![Bind {
        source: dir.to_string_lossy().into_owned(),
        target: "/work".into(),
        read_only: false,
    }];
    if rig.gate_secrets && !rig.secrets.is_empty() {
        let holder = format!(".gate-mr{}", mr.id);
        crate::town::secret::copy_for_agent(town, &rig.name, &holder, &rig.secrets)?;
        binds.push(Bind {
            source: crate::town::secret::agent_dir(town, &rig.name, &holder)
                .to_string_lossy()
                .into_owned(),
            target: crate::town::secret::MOUNT.into(),
            read_only: true,
        });
    }
    let (uid, gid) = crate::town::workspace::agent_user();
    let mut env = vec![
        ("HOME".to_string(), "/tmp".to_string()),
        ("CI".to_string(), "true".to_string()),
        ("GT_MR".to_string(), mr.id.to_string()),
        ("GT_BEAD".to_string(), mr.bead.clone()),
    ];
    for (k, v) in &rig.env {
        if !env.iter().any(|(have, _)| have == k) {
            env.push((k.clone(), v.clone()));
        }
    }
    Ok(ContainerSpec {
        name: gate_name(town, &rig.name, mr.id, run),
        image: rig.image.clone(),
        cmd: vec!["sh".into(), "-c".into(), command],
        env,
        labels: BTreeMap::from([
            (LABEL_TOWN.to_string(), town.id.clone()),
            (LABEL_RIG.to_string(), rig.name.clone()),
            (LABEL_GATE.to_string(), mr.id.to_string()),
            (LABEL_GATE_RUN.to_string(), run.to_string()),
        ]),
        binds,
        tmpfs: vec![Tmpfs {
            target: "/tmp".into(),
            options: "size=1g,mode=1777".into(),
        }],
        read_only_root: true,
        workdir: "/work".into(),
        user: format!("{uid}:{gid}"),
        memory: rig.memory,
        cpus: rig.cpus,
        pids: rig.pids,
        network: (rig.network != "default").then(|| rig.network.clone()),
        placement: rig.placement.clone(),
        secret_env: Vec::new(),
    })
}

/// A gate run's end: passed → `gated`; failed → one retry (a flaky gate), then the
/// target alone tells a bad change (sent back) from a broken target (escalated once).
pub(super) fn watch_gate(
    town: &mut Town,
    rt: &dyn Runtime,
    rig: &Rig,
    mr: &MergeRequest,
    report: &mut Report,
) -> Result<Progress> {
    let name = gate_name(town, &rig.name, mr.id, mr.gate_runs);
    let target_only = mr.step.as_deref() == Some("target-gate");
    let observed = rt.inspect(&name)?;
    let mut timed_out = false;
    let code = match &observed {
        Some(c) if c.state == RunState::Running || c.state == RunState::Created => {
            let limit = town.config.patrol.gate_timeout;
            if now_ms() - mr.updated_at < limit.as_millis() as i64 {
                return Ok(Progress::Wait(format!("its gate runs ({name})")));
            }
            // Too long (patrol.gate_timeout): stopped, and it counts as failing.
            timed_out = true;
            -1
        }
        Some(c) => c.exit_code.unwrap_or(-1),
        None => {
            // The gate container is gone (removed by hand, or lost with the engine):
            // run it again, not counted.
            tracing::warn!(
                "gate {name} of merge request {} vanished; starting it again",
                mr.id
            );
            let mut again = mr.clone();
            again.gate_runs -= 1;
            if let Gate::Unbuildable(e) = start_gate(town, rt, rig, &again, target_only)? {
                return Err(Error::git(format!("checkout for the gate: {e}")));
            }
            return Ok(Progress::Next);
        }
    };
    let mut output = crate::town::transcript::save_gate(
        town,
        rt,
        &name,
        &rig.name,
        &mr.bead,
        mr.id,
        mr.gate_runs,
    )?;
    if timed_out {
        output += &format!(
            "\n(gt: the gate ran longer than patrol.gate_timeout = {}s and was stopped)\n",
            town.config.patrol.gate_timeout.as_secs()
        );
    }
    rt.remove(&name, Duration::from_secs(0))?;
    end_scratch(town, rig, mr);
    let oom = observed.as_ref().is_some_and(|c| c.oom);
    town.db.write(|tx| {
        tx.event(
            "mr.gate_ended",
            &mr.bead,
            serde_json::json!({ "mr": mr.id, "run": mr.gate_runs, "exit_code": code, "oom": oom, "timed_out": timed_out, "on": if target_only { "target" } else { "candidate" } }),
        )
    })?;
    let tail = crate::town::transcript::last_lines(&output, GATE_TAIL_LINES);
    match (target_only, code == 0) {
        (false, true) => {
            if mr.gate_runs > 1 {
                town.db.write(|tx| {
                    tx.event(
                        "mr.gate_flaky",
                        &mr.bead,
                        serde_json::json!({ "mr": mr.id, "runs": mr.gate_runs }),
                    )
                })?;
            }
            checkpoint(town, mr, "gated", &[], &["mr.gated"])?;
            Ok(Progress::Next)
        }
        (false, false) if mr.gate_runs < 2 => {
            // One retry: a gate that fails once and then passes is flaky, not failing.
            if let Gate::Unbuildable(e) = start_gate(town, rt, rig, mr, false)? {
                return Err(Error::git(format!("checkout for the gate: {e}")));
            }
            Ok(Progress::Next)
        }
        (false, false) => {
            // Failed twice: is it the change, or is the target broken already?
            town.db.write(|tx| {
                tx.execute(
                    "UPDATE merge_requests SET reason = ?2 WHERE id = ?1",
                    rusqlite::params![mr.id, format!("gate failed (exit {code}):\n{tail}")],
                )
                .map_err(|e| tx.err(e))?;
                tx.event(
                    "mr.gate_failed",
                    &mr.bead,
                    serde_json::json!({ "mr": mr.id, "runs": mr.gate_runs, "exit_code": code }),
                )
            })?;
            if let Gate::Unbuildable(e) = start_gate(town, rt, rig, mr, true)? {
                return Err(Error::git(format!(
                    "checkout of the target for the gate: {e}"
                )));
            }
            Ok(Progress::Next)
        }
        (true, true) => {
            let failing = mr.reason.clone().unwrap_or_default();
            let why = format!(
                "the gate fails with it (and passes on {} alone)",
                target_of(mr, rig)
            );
            let detail = format!(
                "`{cmd}` fails on {target} with your change, and passes without it. Its output ends:\n\n{failing}\n\n\
                 Fix it on your branch (bring it up to date with {target} if needed), commit, and `gt done` again.",
                cmd = rig.test_command.as_deref().unwrap_or(""),
                target = target_of(mr, rig),
            );
            send_back(town, rig, mr, MrState::Failed, &why, &detail, report)?;
            Ok(Progress::Finished)
        }
        (true, false) => {
            let base = mr.base.clone().unwrap_or_default();
            broken_target_found(town, rig, mr, &base, &tail)?;
            Ok(Progress::Wait(format!(
                "{} fails its gate without any change: waiting for a fix",
                target_of(mr, rig)
            )))
        }
    }
}

/// The gate fails on the target alone: a rig problem, said once per target commit; the
/// merge request waits in the queue (not sent back) and the rig lands nothing else
/// until the target changes.
fn broken_target_found(
    town: &mut Town,
    rig: &Rig,
    mr: &MergeRequest,
    base: &str,
    tail: &str,
) -> Result<()> {
    let target = target_of(mr, rig);
    let m = crate::state::mail::Mail::new(
        format!("mq-target-broken-{}-{}", rig.name, short(base)),
        "patrol",
        MAYOR,
        format!("[escalation] {} of rig {} fails its gate", target, rig.name),
        format!(
            "The gate `{}` fails on {target} at {} without any change, so no merge request can land. Its output ends:\n\n{tail}\n\n\
             Fix {target} (on the remote, or in the rig's repository); the queue goes on when {target} moves.",
            rig.test_command.as_deref().unwrap_or(""),
            short(base),
        ),
        now_ms(),
    );
    let key = format!("mq.broken.{}", rig.name);
    town.db.write(|tx| {
        crate::town::mail::post(tx, &m)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            rusqlite::params![key, base],
        )
        .map_err(|e| tx.err(e))?;
        tx.execute(
            "UPDATE merge_requests SET state = 'queued', step = NULL, base = NULL, candidate = NULL, gate_runs = 0,
               reason = ?2, updated_at = ?3, version = version + 1 WHERE id = ?1",
            rusqlite::params![mr.id, format!("waits: {target} fails its gate at {} without this change", short(base)), now_ms()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            "mq.target_broken",
            &mr.bead,
            serde_json::json!({ "target": target, "commit": base, "mr": mr.id }),
        )
    })
}

/// The target commit a rig waits on being fixed, if any.
pub(super) fn broken_target(town: &Town, rig: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    town.db
        .conn()
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [format!("mq.broken.{rig}")],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| town.db_err(e))
}

/// A gate run's scratch checkout and secrets go once its result is read.
fn end_scratch(town: &Town, rig: &Rig, mr: &MergeRequest) {
    let dir = scratch_dir(town, &rig.name, mr.id);
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("scratch {} not removed: {e}", dir.display());
    }
    let _ = crate::town::secret::remove_secrets(town, &rig.name, &format!(".gate-mr{}", mr.id));
}

/// Scratch checkouts of merge requests no gate runs for (a pass killed mid-gate) go.
pub(super) fn sweep_scratch(town: &Town, rig: &Rig) -> Result<()> {
    let dir = town.root.join("scratch").join(&rig.name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let gating: Vec<String> = merge_requests::in_state(town.db.conn(), &rig.name, MrState::Testing)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|m| matches!(m.step.as_deref(), Some("gate") | Some("target-gate")))
        .map(|m| format!("mr{}", m.id))
        .collect();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !gating.contains(&name) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}
