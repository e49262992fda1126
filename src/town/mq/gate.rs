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
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The label naming the merge request a gate container tests.
pub const LABEL_GATE: &str = "gt.gate";

/// The label naming which gate run of its merge request a container is.
const LABEL_GATE_RUN: &str = "gt.gate-run";

/// Lines of a failing gate's output that go back to the work (and into `gt prime`).
const GATE_TAIL_LINES: usize = 40;

/// The label holding when a gate run started on the host's monotonic clock
/// (`<boot id> <ms>`): its timeout is measured on it, so a wall-clock jump neither
/// fails a gate nor keeps one running forever.
const LABEL_GATE_CLOCK: &str = "gt.gate-clock";

/// Where a gate run's checkout is mounted, read-only: the gate copies it into its own
/// /work (a tmpfs of `patrol.gate_disk`), so nothing it writes reaches the host's disk
/// or survives into a later run.
const CHECKOUT_MOUNT: &str = "/gt-checkout";

/// A gate container's command (`sh -c GATE_SCRIPT gt-gate TEST_COMMAND`): the checkout
/// copied into /work, then the test command as `sh -c`. The script is the container's
/// process 1, which nothing inside the container can signal (the kernel drops what it
/// has no handler for, SIGKILL included), and it exits below 128 itself: an exit of 128
/// or more means it was killed from outside (`docker stop`, an engine restart, a
/// reboot), the host's doing, never the change's.
const GATE_SCRIPT: &str = r#"cd /work || exit 125
cp -R /gt-checkout/. /work/ || { echo "gt: the checkout could not be copied into the gate's /work (patrol.gate_disk)" >&2; exit 125; }
sh -c "$1"
s=$?
if [ "$s" -ge 128 ]; then echo "gt: the test command ended with status $s" >&2; exit 125; fi
exit "$s""#;

/// Gate runs of one merge request stopped from outside that run again uncounted; past
/// this, one more counts as failing (a gate that cannot finish blocks its rig's queue).
const MAX_INTERRUPTIONS: i64 = 5;

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

/// The host-only directory gate run `run` of merge request `mr` is checked out into:
/// one per run, made new for it (see `fresh_dir`).
fn scratch_dir(town: &Town, rig: &str, mr: i64, run: i64) -> PathBuf {
    town.root
        .join("scratch")
        .join(rig)
        .join(scratch_name(mr, run))
}

fn scratch_name(mr: i64, run: i64) -> String {
    format!("mr{mr}.{run}")
}

/// `dir`, new and empty: whatever an earlier run left there is removed first, and a
/// leftover that cannot be removed stops the gate (the host's problem, said on the merge
/// request) instead of being run by it.
fn fresh_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    remove_tree(dir).map_err(|e| {
        Error::io(
            format!("removing the leftover gate checkout {}", dir.display()),
            e,
        )
    })?;
    std::fs::create_dir(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Remove `dir` and everything in it, also what its owner made unwritable (a `chmod 555`
/// directory keeps its entries from `remove_dir_all`); no link is followed. Absent is fine.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    fn open_up(p: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::symlink_metadata(p)?.is_dir() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))?;
            for e in std::fs::read_dir(p)? {
                open_up(&e?.path())?;
            }
        }
        Ok(())
    }
    let _ = open_up(dir);
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Whether a checkout error is the host's (its disk full or failing, out of memory or
/// file handles, a directory it may not write) rather than the commit's: libgit2 ends an
/// OS error's message with the system's text for its errno, so the end of the message
/// names the errno (a path in the message, which the change chooses, cannot).
pub(super) fn host_fault(e: &git2::Error) -> bool {
    const HOST: [i32; 11] = [
        libc::ENOSPC,
        libc::EDQUOT,
        libc::EIO,
        libc::EROFS,
        libc::ENOMEM,
        libc::EMFILE,
        libc::ENFILE,
        libc::EACCES,
        libc::EPERM,
        libc::ESTALE,
        libc::ENOTCONN,
    ];
    e.class() == git2::ErrorClass::Os
        && HOST.iter().any(|&n| {
            let text = std::io::Error::from_raw_os_error(n).to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            e.message().ends_with(text)
        })
}

/// The space `tree`'s files take once checked out on a tmpfs (each file rounded up to
/// a page), without writing them.
fn checkout_size(repo: &Repository, tree: &git2::Tree) -> Result<u64> {
    const PAGE: u64 = 4096;
    let odb = repo.odb()?;
    let mut total: u64 = 0;
    let mut failed = None;
    let walked = tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            match odb.read_header(entry.id()) {
                Ok((size, _)) => total = total.saturating_add((size as u64).div_ceil(PAGE) * PAGE),
                Err(e) => {
                    failed = Some(e);
                    return git2::TreeWalkResult::Abort;
                }
            }
        }
        git2::TreeWalkResult::Ok
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    walked?;
    Ok(total)
}

/// "1.5 GiB"-style, for messages.
fn human_size(bytes: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// The host's monotonic clock now, in ms, with the boot it counts from: `<boot id> <ms>`.
fn gate_clock() -> Option<(String, i64)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid place for clock_gettime to write to.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return None;
    }
    // time_t and c_long are i64 here, narrower on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let ms = ts.tv_sec as i64 * 1000 + ts.tv_nsec as i64 / 1_000_000;
    Some((boot.trim().to_string(), ms))
}

/// How long a gate container has run: on the monotonic clock since the start its label
/// records (same boot), else (a reboot, an older gt's gate) on the wall clock since the
/// merge request recorded the run.
fn running_for(c: &crate::runtime::Observed, mr: &MergeRequest) -> i64 {
    let started = c.labels.get(LABEL_GATE_CLOCK).and_then(|l| {
        let (boot, ms) = l.split_once(' ')?;
        Some((boot.to_string(), ms.parse::<i64>().ok()?))
    });
    match (started, gate_clock()) {
        (Some((boot, start)), Some((now_boot, now))) if boot == now_boot => (now - start).max(0),
        _ => now_ms() - mr.updated_at,
    }
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
    let what = if target_only {
        format!("{} at {}", target_of(mr, rig), short(&commit))
    } else {
        format!("the candidate of merge request {}", mr.id)
    };
    let repo = Repository::open(town.repo_dir(&rig.name))?;
    let tree = repo.find_commit(Oid::from_str(&commit)?)?.tree()?;
    // The files must fit in the gate's /work; checked before anything is written, so a
    // change cannot fill the host's disk with its checkout either.
    let size = checkout_size(&repo, &tree)?;
    let disk = town.config.patrol.gate_disk.max(0) as u64;
    if size > disk {
        return Ok(Gate::Unbuildable(format!(
            "they take {}, more than a gate's /work holds (patrol.gate_disk = {})",
            human_size(size),
            human_size(disk)
        )));
    }
    // A plain checkout of the commit's files (no .git, nothing of the rig's repository)
    // into a directory new for this run: nothing an earlier run left is in it.
    let dir = scratch_dir(town, &rig.name, mr.id, run);
    fresh_dir(&dir)?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.target_dir(&dir)
        .force()
        .recreate_missing(true)
        .update_index(false);
    if let Err(e) = repo.checkout_tree(tree.as_object(), Some(&mut co)) {
        let _ = remove_tree(&dir);
        if host_fault(&e) {
            // The host failed (a full disk): the merge request waits, nobody is blamed.
            return Err(Error::git(format!(
                "the host could not check out {what} for its gate: {}",
                e.message()
            ))
            .with_hint(format!(
                "make room (or fix the disk) under {}; the gate runs again in the next pass",
                town.root.join("scratch").display()
            )));
        }
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
        target: CHECKOUT_MOUNT.into(),
        read_only: true,
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
    let mut labels = BTreeMap::from([
        (LABEL_TOWN.to_string(), town.id.clone()),
        (LABEL_RIG.to_string(), rig.name.clone()),
        (LABEL_GATE.to_string(), mr.id.to_string()),
        (LABEL_GATE_RUN.to_string(), run.to_string()),
    ]);
    if let Some((boot, ms)) = gate_clock() {
        labels.insert(LABEL_GATE_CLOCK.to_string(), format!("{boot} {ms}"));
    }
    Ok(ContainerSpec {
        name: gate_name(town, &rig.name, mr.id, run),
        image: rig.image.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            GATE_SCRIPT.into(),
            "gt-gate".into(),
            command,
        ],
        env,
        labels,
        binds,
        // /work is the gate's own bounded disk (a tmpfs: no mount on the host, so this
        // holds for a gt that is not root too); what it writes goes with the container.
        tmpfs: vec![
            Tmpfs {
                target: "/tmp".into(),
                options: "size=1g,mode=1777".into(),
            },
            Tmpfs {
                target: "/work".into(),
                options: format!("size={},mode=1777", town.config.patrol.gate_disk),
            },
        ],
        read_only_root: true,
        // Not /work: Docker would make the workdir's tmpfs root-only (the script cds).
        workdir: "/".into(),
        user: format!("{uid}:{gid}"),
        memory: rig.memory,
        cpus: rig.cpus,
        pids: rig.pids,
        network: (rig.network != "default").then(|| rig.network.clone()),
        placement: rig.placement.clone(),
        secret_env: Vec::new(),
        // The gate's script is process 1 (see GATE_SCRIPT).
        init: false,
    })
}

/// How a gate run ended.
enum Verdict {
    Passed,
    /// The test failed (its exit code, an OOM kill, the timeout): why, for people.
    Failed(String),
    /// Killed from outside (`docker stop`, an engine restart): the exit code, if known.
    Interrupted(Option<i64>),
}

/// A gate run's end: passed → `gated`; failed → one retry (a flaky gate), then the
/// target alone tells a bad change (sent back) from a broken target (escalated once).
/// A run stopped from outside (the host's doing) runs again, counted against nobody.
pub(super) fn watch_gate(
    town: &mut Town,
    rt: &dyn Runtime,
    rig: &Rig,
    mr: &MergeRequest,
    report: &mut Report,
) -> Result<Progress> {
    let name = gate_name(town, &rig.name, mr.id, mr.gate_runs);
    let target_only = mr.step.as_deref() == Some("target-gate");
    let Some(c) = rt.inspect(&name)? else {
        // The gate container is gone (removed by hand, or lost with the engine):
        // run it again, not counted.
        tracing::warn!(
            "gate {name} of merge request {} vanished; starting it again",
            mr.id
        );
        return run_again(town, rt, rig, mr, target_only);
    };
    let limit = town.config.patrol.gate_timeout;
    let timed_out = matches!(c.state, RunState::Running | RunState::Created);
    if timed_out && running_for(&c, mr) < limit.as_millis() as i64 {
        return Ok(Progress::Wait(format!("its gate runs ({name})")));
    }
    let mut verdict = if timed_out && c.state == RunState::Created {
        // Never started (a swarm task no node takes, an engine that failed to start
        // it): nothing of the change ran, the host could not run it.
        tracing::warn!(
            "gate {name} never started{}",
            c.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        Verdict::Interrupted(None)
    } else if timed_out {
        // Too long (patrol.gate_timeout): stopped, and it counts as failing.
        Verdict::Failed(format!(
            "it ran longer than patrol.gate_timeout = {}s and was stopped",
            limit.as_secs()
        ))
    } else if c.oom {
        Verdict::Failed(format!(
            "OOM-killed: it needed more than the rig's memory limit of {}",
            crate::util::format_size(rig.memory)
        ))
    } else {
        match c.exit_code {
            Some(0) => Verdict::Passed,
            Some(n) if (1..128).contains(&n) => Verdict::Failed(format!("exit {n}")),
            other => Verdict::Interrupted(other),
        }
    };
    let interrupted_before = if matches!(verdict, Verdict::Interrupted(_)) {
        interruptions(town, mr)?
    } else {
        0
    };
    if let Verdict::Interrupted(code) = verdict
        && interrupted_before >= MAX_INTERRUPTIONS
    {
        verdict = Verdict::Failed(format!(
            "it was stopped from outside (exit {}) {} times in a row",
            code.map_or("unknown".into(), |c| c.to_string()),
            interrupted_before + 1
        ));
    }
    let mut output = crate::town::transcript::save_gate(
        town,
        rt,
        &name,
        &rig.name,
        &mr.bead,
        mr.id,
        mr.gate_runs,
    )?;
    if let Verdict::Failed(why) = &verdict {
        output += &format!("\n(gt: the gate failed: {why})\n");
    }
    rt.remove(&name, Duration::from_secs(0))?;
    end_scratch(town, rig, mr, mr.gate_runs);
    let on = if target_only { "target" } else { "candidate" };
    town.db.write(|tx| {
        tx.event(
            "mr.gate_ended",
            &mr.bead,
            serde_json::json!({ "mr": mr.id, "run": mr.gate_runs, "exit_code": c.exit_code, "oom": c.oom,
                "timed_out": timed_out, "interrupted": matches!(verdict, Verdict::Interrupted(_)), "on": on }),
        )
    })?;
    let why = match verdict {
        Verdict::Passed => None,
        Verdict::Failed(why) => Some(why),
        Verdict::Interrupted(code) => {
            // Not the change's doing, nor the target's: the same run again, uncounted.
            let code = code.map_or("unknown".into(), |c| c.to_string());
            let note = format!(
                "waits: its gate on the {on} was stopped from outside (exit {code}: `docker stop`, an engine restart or a reboot); it runs again, counted against nobody"
            );
            town.db.write(|tx| {
                if !target_only {
                    // (The target-only run keeps the candidate's failing output there.)
                    tx.execute(
                        "UPDATE merge_requests SET reason = ?2 WHERE id = ?1",
                        rusqlite::params![mr.id, note],
                    )
                    .map_err(|e| tx.err(e))?;
                }
                tx.event(
                    "mr.gate_interrupted",
                    &mr.bead,
                    serde_json::json!({ "mr": mr.id, "run": mr.gate_runs, "exit_code": code, "on": on }),
                )
            })?;
            return run_again(town, rt, rig, mr, target_only);
        }
    };
    let tail = crate::town::transcript::last_lines(&output, GATE_TAIL_LINES);
    match (target_only, why) {
        (false, None) => {
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
        (false, Some(_)) if mr.gate_runs < 2 => {
            // One retry: a gate that fails once and then passes is flaky, not failing.
            if let Gate::Unbuildable(e) = start_gate(town, rt, rig, mr, false)? {
                return Err(Error::git(format!("checkout for the gate: {e}")));
            }
            Ok(Progress::Next)
        }
        (false, Some(why)) => {
            // Failed twice: is it the change, or is the target broken already?
            town.db.write(|tx| {
                tx.execute(
                    "UPDATE merge_requests SET reason = ?2 WHERE id = ?1",
                    rusqlite::params![mr.id, format!("gate failed ({why}):\n{tail}")],
                )
                .map_err(|e| tx.err(e))?;
                tx.event(
                    "mr.gate_failed",
                    &mr.bead,
                    serde_json::json!({ "mr": mr.id, "runs": mr.gate_runs, "exit_code": c.exit_code, "why": why }),
                )
            })?;
            if let Gate::Unbuildable(e) = start_gate(town, rt, rig, mr, true)? {
                return Err(Error::git(format!(
                    "checkout of the target for the gate: {e}"
                )));
            }
            Ok(Progress::Next)
        }
        (true, None) => {
            // The target passes alone: whatever marked it broken is gone.
            lift_broken_mark(town, rig)?;
            let failing = match mr.reason.clone() {
                Some(r) if !r.starts_with("waits:") => r,
                // Overwritten by a problem since: the candidate's last run says it.
                _ => {
                    let path = crate::town::transcript::gate_path(
                        town,
                        &rig.name,
                        &mr.bead,
                        mr.id,
                        mr.gate_runs - 1,
                    );
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    crate::town::transcript::last_lines(&text, GATE_TAIL_LINES)
                }
            };
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
        (true, Some(why)) => {
            let base = mr.base.clone().unwrap_or_default();
            broken_target_found(town, rig, mr, &base, &why, &tail)?;
            Ok(Progress::Wait(format!(
                "{} fails its gate without any change: waiting for a fix",
                target_of(mr, rig)
            )))
        }
    }
}

/// The current run started again under its own number (it did not count).
fn run_again(
    town: &mut Town,
    rt: &dyn Runtime,
    rig: &Rig,
    mr: &MergeRequest,
    target_only: bool,
) -> Result<Progress> {
    let mut again = mr.clone();
    again.gate_runs -= 1;
    if let Gate::Unbuildable(e) = start_gate(town, rt, rig, &again, target_only)? {
        return Err(Error::git(format!("checkout for the gate: {e}")));
    }
    Ok(Progress::Next)
}

/// Gate runs of `mr` stopped from outside so far.
fn interruptions(town: &Town, mr: &MergeRequest) -> Result<i64> {
    town.db
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM events WHERE subject = ?1 AND kind = 'mr.gate_interrupted'
               AND json_extract(data, '$.mr') = ?2",
            rusqlite::params![mr.bead, mr.id],
            |r| r.get(0),
        )
        .map_err(|e| town.db_err(e))
}

/// The settings a gate runs with: a broken-target mark made under others is tried again
/// (the cause may have been the gate's command, image or limits, not the target).
fn gate_settings(rig: &Rig) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        &rig.test_command,
        &rig.image,
        rig.memory,
        rig.cpus.to_bits(),
        rig.pids,
        &rig.network,
        &rig.env,
        &rig.secrets,
        rig.gate_secrets,
    )
        .hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The broken-target mark of a rig (`meta` key `mq.broken.<rig>`): the target commit,
/// when it was found failing (ms) and under which gate settings. An older gt stored the
/// commit alone.
#[derive(serde::Serialize, serde::Deserialize)]
struct BrokenMark {
    commit: String,
    #[serde(default)]
    at: i64,
    #[serde(default)]
    gate: String,
}

fn broken_key(rig: &str) -> String {
    format!("mq.broken.{rig}")
}

/// The gate fails on the target alone: a rig problem, said once per target commit; the
/// merge request waits in the queue (not sent back) and the rig lands nothing else
/// until the target changes, the rig's gate settings change, or
/// `patrol.broken_target_recheck` has passed (then the target is tried again).
fn broken_target_found(
    town: &mut Town,
    rig: &Rig,
    mr: &MergeRequest,
    base: &str,
    why: &str,
    tail: &str,
) -> Result<()> {
    let target = target_of(mr, rig);
    let recheck = town.config.patrol.broken_target_recheck.as_secs();
    let m = crate::state::mail::Mail::new(
        format!("mq-target-broken-{}-{}", rig.name, short(base)),
        "patrol",
        MAYOR,
        format!("[escalation] {} of rig {} fails its gate", target, rig.name),
        format!(
            "The gate `{}` fails on {target} at {} without any change ({why}), so no merge request can land. Its output ends:\n\n{tail}\n\n\
             Fix {target} (on the remote, or in the rig's repository), or the gate (`gt rig set {} --test-command`, its image or limits); \
             the queue goes on when either changes. The target is also tried again every {recheck}s (patrol.broken_target_recheck).",
            rig.test_command.as_deref().unwrap_or(""),
            short(base),
            rig.name,
        ),
        now_ms(),
    );
    let mark = serde_json::to_string(&BrokenMark {
        commit: base.to_string(),
        at: now_ms(),
        gate: gate_settings(rig),
    })
    .map_err(|e| Error::Other(format!("recording the broken target: {e}")))?;
    town.db.write(|tx| {
        crate::town::mail::post(tx, &m)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            rusqlite::params![broken_key(&rig.name), mark],
        )
        .map_err(|e| tx.err(e))?;
        tx.execute(
            "UPDATE merge_requests SET state = 'queued', step = NULL, base = NULL, candidate = NULL, gate_runs = 0,
               reason = ?2, updated_at = ?3, version = version + 1 WHERE id = ?1",
            rusqlite::params![mr.id, format!("waits: {target} fails its gate at {} without this change ({why})", short(base)), now_ms()],
        )
        .map_err(|e| tx.err(e))?;
        tx.event(
            "mq.target_broken",
            &mr.bead,
            serde_json::json!({ "target": target, "commit": base, "mr": mr.id, "why": why }),
        )
    })
}

/// The target passed its gate alone: the rig's broken-target mark goes.
fn lift_broken_mark(town: &mut Town, rig: &Rig) -> Result<()> {
    let key = broken_key(&rig.name);
    let had = broken_mark(town, &rig.name)?.is_some();
    if !had {
        return Ok(());
    }
    town.db.write(|tx| {
        tx.execute("DELETE FROM meta WHERE key = ?1", [&key])
            .map_err(|e| tx.err(e))?;
        tx.event(
            "mq.target_fixed",
            &rig.name,
            serde_json::json!({ "rig": rig.name, "by": "its gate passing alone" }),
        )
    })
}

fn broken_mark(town: &Town, rig: &str) -> Result<Option<BrokenMark>> {
    use rusqlite::OptionalExtension;
    let value: Option<String> = town
        .db
        .conn()
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [broken_key(rig)],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| town.db_err(e))?;
    Ok(value.map(|v| {
        serde_json::from_str(&v).unwrap_or(BrokenMark {
            commit: v,
            at: 0,
            gate: String::new(),
        })
    }))
}

/// The target commit a rig waits on being fixed, if any: none once the rig's gate
/// settings changed since it was found failing, or `patrol.broken_target_recheck`
/// passed (the next landing then gates it again, the target alone included).
pub(super) fn broken_target(town: &Town, rig: &str) -> Result<Option<String>> {
    let Some(mark) = broken_mark(town, rig)? else {
        return Ok(None);
    };
    let Some(r) = crate::state::rigs::get(town.db.conn(), rig).map_err(|e| town.db_err(e))? else {
        return Ok(None);
    };
    let recheck = town.config.patrol.broken_target_recheck.as_millis() as i64;
    let age = now_ms() - mark.at;
    if mark.gate != gate_settings(&r) || !(0..recheck).contains(&age) {
        return Ok(None);
    }
    Ok(Some(mark.commit))
}

/// A gate run's scratch checkout and secrets go once its result is read.
fn end_scratch(town: &Town, rig: &Rig, mr: &MergeRequest, run: i64) {
    let dir = scratch_dir(town, &rig.name, mr.id, run);
    if let Err(e) = remove_tree(&dir) {
        tracing::warn!("scratch {} not removed: {e}", dir.display());
    }
    let _ = crate::town::secret::remove_secrets(town, &rig.name, &format!(".gate-mr{}", mr.id));
}

/// Scratch checkouts no gate runs on (a pass killed mid-gate, an earlier run) go.
pub(super) fn sweep_scratch(town: &Town, rig: &Rig) -> Result<()> {
    let dir = town.root.join("scratch").join(&rig.name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let gating: Vec<String> = merge_requests::in_state(town.db.conn(), &rig.name, MrState::Testing)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|m| matches!(m.step.as_deref(), Some("gate") | Some("target-gate")))
        .map(|m| scratch_name(m.id, m.gate_runs))
        .collect();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !gating.contains(&name)
            && let Err(err) = remove_tree(&e.path())
        {
            tracing::warn!("scratch {} not removed: {err}", e.path().display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_os_error_ending_in_a_host_errno_is_the_hosts_fault() {
        let os =
            |msg: &str| git2::Error::new(git2::ErrorCode::GenericError, git2::ErrorClass::Os, msg);
        assert!(host_fault(&os(
            "could not write to '/t/scratch/mr1.1/big.txt': No space left on device"
        )));
        assert!(host_fault(&os(
            "failed to make directory '/t/x': Permission denied"
        )));
        // The change's own paths: a name too long, or a path naming the errno text.
        assert!(!host_fault(&os(
            "could not open '/t/x' for writing: File name too long"
        )));
        assert!(!host_fault(&os(
            "could not open 'No space left on device' for writing"
        )));
        let checkout = git2::Error::new(
            git2::ErrorCode::GenericError,
            git2::ErrorClass::Checkout,
            "cannot checkout to invalid path 'a: No space left on device'",
        );
        assert!(!host_fault(&checkout));
    }

    #[test]
    fn a_directory_its_owner_made_unwritable_is_removed_with_its_entries() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("mr1.1");
        std::fs::create_dir_all(dir.join("trap/deeper")).unwrap();
        std::fs::write(dir.join("trap/deeper/fail.sh"), "exit 1\n").unwrap();
        for p in ["trap/deeper", "trap"] {
            std::fs::set_permissions(dir.join(p), std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        // A link out of the tree is removed, not followed.
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
        assert!(outside.join("keep").exists());
        remove_tree(&dir).unwrap();
        fresh_dir(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }
}
