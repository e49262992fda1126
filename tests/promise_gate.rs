//! Gates blame nobody for the host's faults: a full disk, a gate stopped from outside
//! or an engine restart leave the change waiting (no attempt burned, the target not
//! declared broken); every gate run has a fresh, bounded checkout nothing earlier can
//! touch; an OOM kill is said as one; a gate's timeout is measured on a clock that
//! does not jump; a target marked broken is tried again.

mod support;

use support::*;

/// A rig `api` whose remote is a bare clone of its source (so the remote has `main`),
/// with `command` and `extra` settings; returns the remote's path.
fn landing_rig(t: &TestTown, command: &str, extra: &[&str]) -> std::path::PathBuf {
    let src = t.source_repo("api");
    let remote = t.root().parent().unwrap().join("remote.git");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(&remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let image = test_image();
    let mut args = vec![
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &image,
        "--command",
        command,
        "--memory",
        "256m",
        "--remote",
        remote.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    t.ok(&args);
    remote
}

fn mrs(t: &TestTown, bead: &str) -> Vec<serde_json::Value> {
    t.json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["bead"] == bead)
        .cloned()
        .collect()
}

fn mr_states(t: &TestTown, bead: &str) -> Vec<String> {
    mrs(t, bead)
        .iter()
        .map(|m| m["state"].as_str().unwrap().to_string())
        .collect()
}

fn latest_reason(t: &TestTown, bead: &str) -> String {
    mrs(t, bead)
        .last()
        .and_then(|m| m["reason"].as_str().map(String::from))
        .unwrap_or_default()
}

/// The town's events of `kind`.
fn events(t: &TestTown, kind: &str) -> Vec<serde_json::Value> {
    t.json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

fn attempts(t: &TestTown, bead: &str) -> i64 {
    t.json(&["bead", "show", bead])["attempts"]
        .as_i64()
        .unwrap()
}

/// Running gate containers of this town.
fn running_gates(t: &TestTown) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=gt.town={}", t.id),
        "--filter",
        "label=gt.gate",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn scratch_is_empty(t: &TestTown) -> bool {
    let d = t.root().join("scratch/api");
    std::fs::read_dir(&d)
        .map(|mut e| e.next().is_none())
        .unwrap_or(true)
}

#[test]
fn a_full_disk_during_a_gates_checkout_blames_nobody_and_the_change_lands_once_there_is_room() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // The host's scratch disk (where gates' checkouts go) holds 1 MiB; the change adds
    // a 2 MiB file.
    let Some(disk) = SmallDisk::mount(&t.root().join("scratch"), "1m") else {
        return;
    };
    let big = "head -c 2097152 /dev/zero | tr '\\0' x > big.txt && git add big.txt && git commit -q -m big";
    let remote = landing_rig(
        &t,
        &scripted_agent(big),
        &["--merge", "auto", "--test-command", "test -s big.txt"],
    );
    let id = t.bead("a big file");
    t.ok(&["sling", &id]);
    t.patrol_until("the gate's checkout meets the full disk", 120, |t| {
        latest_reason(t, &id).contains("No space left on device")
    });
    // More passes: the change waits for the host, not sent back, no attempt burned.
    for _ in 0..2 {
        t.run(&["mq", "run", "--wait", "0s"]);
    }
    assert_eq!(mr_states(&t, &id), vec!["testing"], "{:?}", mrs(&t, &id));
    let reason = latest_reason(&t, &id);
    assert!(
        reason.starts_with("waits: ") && reason.contains("the host could not check out"),
        "{reason}"
    );
    assert_eq!(t.bead_status(&id), "done");
    assert_eq!(attempts(&t, &id), 1, "{:?}", t.dispatches(&id));
    assert!(events(&t, "mr.returned").is_empty());
    // Room again: it lands, nobody was blamed.
    disk.resize("64m");
    t.patrol_until("merged once there is room", 120, |t| {
        mr_states(t, &id) == vec!["merged"]
    });
    assert!(git(&remote, &["ls-tree", "--name-only", "main"]).contains("big.txt"));
    assert_eq!(attempts(&t, &id), 1, "{:?}", t.dispatches(&id));
    assert!(scratch_is_empty(&t));
    t.doctor_clean();
}

#[test]
fn a_change_whose_files_exceed_the_gates_disk_is_sent_back_before_anything_is_written() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("", "gate_disk = \"1m\"");
    let big = "head -c 2097152 /dev/zero | tr '\\0' x > big.txt && git add big.txt && git commit -q -m big";
    landing_rig(
        &t,
        &scripted_agent(big),
        &["--merge", "auto", "--test-command", "true"],
    );
    let id = t.bead("too big for the gate");
    t.ok(&["sling", &id]);
    t.patrol_until("sent back", 120, |t| {
        mr_states(t, &id).first().is_some_and(|s| s == "failed")
    });
    let reason = mrs(&t, &id)[0]["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("more than a gate's /work holds (patrol.gate_disk = 1.0 MiB)"),
        "{reason}"
    );
    assert!(events(&t, "mr.gate_started").is_empty());
}

#[test]
fn a_gate_stopped_from_outside_runs_again_counted_against_nobody_and_the_change_lands() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    landing_rig(
        &t,
        &scripted_agent(""),
        &["--merge", "auto", "--test-command", "sleep 600"],
    );
    let id = t.bead("stopped gates");
    t.ok(&["sling", &id]);
    // Three runs stopped with `docker stop` (the third after the gate was made quick):
    // counted, they would have failed the candidate twice and then the target alone.
    let mut stopped: Vec<String> = Vec::new();
    for i in 0..3 {
        let mut gate = None;
        t.patrol_until("a gate running", 120, |t| {
            gate = running_gates(t).into_iter().find(|g| !stopped.contains(g));
            gate.is_some()
        });
        let gate = gate.unwrap();
        if i == 2 {
            t.ok(&["rig", "set", "api", "--test-command", "true"]);
        }
        let out = docker(&["stop", "-t", "1", &gate]);
        assert!(out.status.success(), "{out:?}");
        stopped.push(gate);
    }
    t.patrol_until("merged", 120, |t| {
        mr_states(t, &id) == vec!["merged"] || !t.mayor_mail_subject("fails its gate").is_empty()
    });
    assert_eq!(mr_states(&t, &id), vec!["merged"], "{:?}", mrs(&t, &id));
    assert!(t.mayor_mail_subject("fails its gate").is_empty());
    assert_eq!(events(&t, "mr.gate_interrupted").len(), 3);
    assert!(events(&t, "mr.gate_failed").is_empty());
    assert!(events(&t, "mq.target_broken").is_empty());
    let on: Vec<String> = events(&t, "mr.gate_started")
        .iter()
        .map(|e| e["data"]["on"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(on, vec!["candidate"; 4]);
    assert_eq!(attempts(&t, &id), 1, "{:?}", t.dispatches(&id));
    assert!(scratch_is_empty(&t));
    t.doctor_clean();
}

#[test]
fn an_engine_restart_during_a_gate_blames_nobody_and_the_gate_runs_again() {
    if !require_docker() {
        return;
    }
    let mut engine = PrivateEngine::start();
    let t = TestTown::new().on_engine(&engine.host());
    landing_rig(
        &t,
        &scripted_agent(""),
        &["--merge", "auto", "--test-command", "sleep 600"],
    );
    let id = t.bead("engine restarts");
    t.ok(&["sling", &id]);
    t.patrol_until("its gate running", 120, |t| {
        events(t, "mr.gate_started").len() == 1
    });
    engine.restart();
    t.ok(&["rig", "set", "api", "--test-command", "true"]);
    t.patrol_until("merged", 120, |t| mr_states(t, &id) == vec!["merged"]);
    let interrupted = events(&t, "mr.gate_interrupted");
    assert_eq!(interrupted.len(), 1, "{interrupted:?}");
    assert!(events(&t, "mr.gate_failed").is_empty());
    assert!(events(&t, "mr.gate_flaky").is_empty());
    assert_eq!(attempts(&t, &id), 1, "{:?}", t.dispatches(&id));
    t.doctor_clean();
}

/// gt as the non-root user `uid` (with the Docker socket's group), on town `t`.
fn gt_as(t: &TestTown, uid: u32, args: &[&str]) -> std::process::Output {
    use std::os::unix::fs::MetadataExt;
    let sock = std::env::var("DOCKER_HOST").unwrap_or_default();
    let sock = sock
        .strip_prefix("unix://")
        .unwrap_or("/var/run/docker.sock");
    let gid = std::fs::metadata(sock).map(|m| m.gid()).unwrap_or(0);
    std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg(format!("--groups={gid}"))
        .arg(gt_bin())
        .args(args)
        .env("GT_TOWN", t.root())
        .env("HOME", t.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("GT_AGENT")
        .output()
        .unwrap()
}

#[test]
fn a_candidates_leftovers_never_reach_the_target_only_gate_of_a_non_root_gt() {
    if !require_docker() {
        return;
    }
    const UID: u32 = 10001;
    let t = TestTown::new();
    // The change's own check fails, and leaves a failing check behind in a directory it
    // makes undeletable for its owner (gt is not root: the agent is gt's own uid).
    let poison = r#"mkdir -p checks && printf '%s\n' 'mkdir -p trap && printf "exit 1\n" > trap/fail.sh && chmod 555 trap' 'exit 1' > checks/evil.sh && git add checks && git commit -q -m 'a failing check'"#;
    landing_rig(
        &t,
        &scripted_agent(poison),
        &[
            "--merge",
            "auto",
            "--test-command",
            "for f in */*.sh; do [ -f \"$f\" ] || continue; sh \"$f\" || exit 1; done",
        ],
    );
    let st = std::process::Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}")])
        .arg(t.dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let id =
        String::from_utf8(gt_as(&t, UID, &["bead", "create", "--rig", "api", "leftovers"]).stdout)
            .unwrap()
            .trim()
            .to_string();
    let out = gt_as(&t, UID, &["sling", &id]);
    assert!(out.status.success(), "{out:?}");
    // Every command as that user: a root gt would leave files that one cannot write.
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = gt_as(&t, UID, &a);
        assert!(out.status.success(), "gt {args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first_mr = || -> Option<serde_json::Value> {
        json(&["mq", "list", "--all"])
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["bead"] == id.as_str())
            .cloned()
    };
    let broken_mail = || -> Vec<serde_json::Value> {
        json(&["mail", "inbox", "--as", "mayor"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["subject"].as_str().unwrap().contains("fails its gate"))
            .cloned()
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(deadline_secs(180));
    loop {
        gt_as(&t, UID, &["patrol"]);
        let settled = first_mr().is_some_and(|m| m["state"] != "testing" && m["state"] != "queued");
        if settled || !broken_mail().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no verdict: {:?}\n{}",
            first_mr(),
            String::from_utf8_lossy(&gt_as(&t, UID, &["log", "-n", "80"]).stdout)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The target alone passed: the change is to blame, main is not broken.
    assert!(
        broken_mail().is_empty(),
        "main was declared broken: {:?}",
        broken_mail()
    );
    let first = first_mr().unwrap();
    assert_eq!(first["state"], "failed", "{first}");
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("passes on main alone"),
        "{first}"
    );
}

/// Bytes under `dir` (files only, no link followed).
fn du(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The text of every gate transcript of bead `id`.
fn gate_transcripts(t: &TestTown, id: &str) -> String {
    let dir = t.root().join("transcripts/api").join(id);
    let mut text = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with("gate-") {
            text += &std::fs::read_to_string(e.path()).unwrap_or_default();
        }
    }
    text
}

#[test]
fn a_gate_writes_into_a_bounded_work_dir_of_its_own_never_onto_the_hosts_disk() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let gate = "head -c 33554432 /dev/zero > blob && sleep 600";
    landing_rig(
        &t,
        &scripted_agent(""),
        &["--merge", "auto", "--test-command", gate],
    );
    let id = t.bead("writes a lot");
    t.ok(&["sling", &id]);
    let mut gate_id = None;
    t.patrol_until("its gate running", 120, |t| {
        gate_id = running_gates(t).into_iter().next();
        gate_id.is_some()
    });
    let gate_id = gate_id.unwrap();
    // The 32 MiB it wrote are in the gate's own /work, not in the host's scratch dir.
    wait_for("the gate's write done", 60, || {
        let out = docker(&["exec", &gate_id, "sh", "-c", "wc -c < /work/blob"]);
        (String::from_utf8_lossy(&out.stdout).trim() == "33554432").then_some(())
    });
    let on_host = du(&t.root().join("scratch"));
    assert!(on_host < 1 << 20, "{on_host} bytes in the host's scratch");
    // And /work is bounded (patrol.gate_disk): a bigger write fails inside the gate.
    t.configure("", "gate_disk = \"16m\"");
    t.ok(&[
        "rig",
        "set",
        "api",
        "--test-command",
        "head -c 67108864 /dev/zero > blob 2>/dev/null; echo \"wrote $(wc -c < blob) bytes\"",
    ]);
    let out = docker(&["stop", "-t", "1", &gate_id]);
    assert!(out.status.success(), "{out:?}");
    t.patrol_until("merged", 120, |t| mr_states(t, &id) == vec!["merged"]);
    let text = gate_transcripts(&t, &id);
    let wrote: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("wrote ")?
                .strip_suffix(" bytes")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no write reported: {text}"));
    assert!(wrote <= 16 << 20, "wrote {wrote} bytes into a 16 MiB /work");
    assert!(scratch_is_empty(&t));
}

#[test]
fn an_oom_killed_gate_is_reported_as_an_oom_kill_not_as_exit_137() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // With the change (its work-*.txt), the gate grows a shell variable until the
    // rig's memory limit kills it; main alone passes.
    let gate = "if ls work-*.txt >/dev/null 2>&1; then x=xxxxxxxxxxxxxxxx; while :; do x=\"$x$x\"; done; fi";
    landing_rig(
        &t,
        &scripted_agent(""),
        &["--merge", "auto", "--test-command", gate],
    );
    let id = t.bead("eats memory");
    t.ok(&["sling", &id]);
    t.patrol_until("its verdict", 180, |t| {
        mr_states(t, &id).first().is_some_and(|s| s == "failed")
    });
    let first = &mrs(&t, &id)[0];
    let reason = first["reason"].as_str().unwrap();
    assert!(
        reason.contains("OOM-killed") && reason.contains("memory limit of 256m"),
        "{reason}"
    );
    assert!(!reason.contains("exit 137"), "{reason}");
    let ended = events(&t, "mr.gate_ended");
    assert!(ended.iter().any(|e| e["data"]["oom"] == true), "{ended:?}");
}

#[test]
fn a_clock_jump_past_gate_timeout_does_not_fail_a_running_gate() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    landing_rig(
        &t,
        &scripted_agent(""),
        &["--merge", "auto", "--test-command", "sleep 600"],
    );
    let id = t.bead("slow gate");
    t.ok(&["sling", &id]);
    let mut gate = None;
    t.patrol_until("its gate running", 120, |t| {
        gate = running_gates(t).into_iter().next();
        gate.is_some()
    });
    // The wall clock jumps two hours ahead (patrol.gate_timeout is 30m): as the town
    // sees it, the gate's run was recorded two hours ago.
    let db = rusqlite::Connection::open(t.root().join(".gt/town.db")).unwrap();
    db.execute(
        "UPDATE merge_requests SET updated_at = updated_at - 7200000 WHERE state = 'testing'",
        [],
    )
    .unwrap();
    drop(db);
    for _ in 0..2 {
        t.ok(&["mq", "run", "--wait", "0s"]);
    }
    assert_eq!(running_gates(&t), vec![gate.clone().unwrap()]);
    assert!(events(&t, "mr.gate_ended").is_empty());
    // A gate that does run too long is still stopped, by the clock that does not jump.
    t.configure("", "gate_timeout = \"2s\"");
    t.patrol_until("the gate timed out", 60, |t| {
        events(t, "mr.gate_ended")
            .iter()
            .any(|e| e["data"]["timed_out"] == true)
    });
    assert!(!running_gates(&t).contains(&gate.unwrap()));
}

/// A rig whose gate fails on main alone for a reason outside main (a setting of the
/// rig: `GATE_OK=0`), and a bead slung on it; returns the bead once main is marked broken.
fn broken_by_the_gate(t: &TestTown) -> String {
    landing_rig(
        t,
        &scripted_agent(""),
        &[
            "--merge",
            "auto",
            "--env",
            "GATE_OK=0",
            "--test-command",
            "[ \"$GATE_OK\" = 1 ]",
        ],
    );
    let id = t.bead("innocent");
    t.ok(&["sling", &id]);
    t.patrol_until("main marked broken", 120, |t| {
        !t.mayor_mail_subject("fails its gate").is_empty()
    });
    let runs = events(t, "mr.gate_started").len();
    for _ in 0..2 {
        t.ok(&["mq", "run"]);
    }
    assert_eq!(
        events(t, "mr.gate_started").len(),
        runs,
        "gated again at once"
    );
    id
}

#[test]
fn a_target_marked_broken_is_gated_again_once_the_rigs_gate_settings_change() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let id = broken_by_the_gate(&t);
    // The gate is fixed (not main): the queue goes on and the change lands.
    t.ok(&["rig", "set", "api", "--env", "GATE_OK=1"]);
    t.ok(&["mq", "run"]);
    assert_eq!(mr_states(&t, &id), vec!["merged"], "{:?}", mrs(&t, &id));
    assert_eq!(attempts(&t, &id), 1, "{:?}", t.dispatches(&id));
    assert_eq!(t.mayor_mail_subject("fails its gate").len(), 1);
    t.doctor_clean();
}

#[test]
fn a_target_marked_broken_is_gated_again_after_patrol_broken_target_recheck() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    broken_by_the_gate(&t);
    let marks = events(&t, "mq.target_broken").len();
    // After patrol.broken_target_recheck the target is tried again (and said once still).
    t.configure("", "broken_target_recheck = \"1s\"");
    t.patrol_until("main gated again", 60, |t| {
        events(t, "mq.target_broken").len() > marks
    });
    assert_eq!(t.mayor_mail_subject("fails its gate").len(), 1);
}
