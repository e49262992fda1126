//! Issue 21: patrol and dispatch keep the promise. `gt status` tells a patrol pass from
//! a `gt mq run`; a town directory moved under a working agent converges; one rig's hung
//! remote delays no other work; dispatch is oldest first, in the order given; a drain or
//! an engine restart trips no breaker.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// `gt --json ARGS` against the town at `root` (a town moved away from `t.root()`).
fn json_at(t: &TestTown, root: &Path, args: &[&str]) -> serde_json::Value {
    let out = at(t, root, &[&["--json"], args].concat());
    assert!(
        out.status.success(),
        "gt {}: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn at(t: &TestTown, root: &Path, args: &[&str]) -> std::process::Output {
    t.cmd().env("GT_TOWN", root).args(args).output().unwrap()
}

fn patrol_health(t: &TestTown) -> serde_json::Value {
    t.json(&["status"])["patrol"].clone()
}

#[test]
fn mq_run_and_mq_reject_leave_the_last_patrol_pass_a_success() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent(""), &["--merge", "review"]);
    let id = t.bead("reviewed");
    t.ok(&["sling", &id]);
    t.patrol_until("its merge request", 60, |t| {
        !t.json(&["mq", "list", "--all"])
            .as_array()
            .unwrap()
            .is_empty()
    });
    t.ok(&["patrol"]);
    let p = patrol_health(&t);
    assert_eq!(p["last_pass_failed"], false, "{p}");
    let passed = p["last_success"].as_i64().unwrap();

    t.ok(&["mq", "run"]);
    let p = patrol_health(&t);
    assert_eq!(p["last_pass_failed"], false, "after gt mq run: {p}");
    assert!(p["failure"].is_null(), "{p}");

    let mr = t.json(&["mq", "list", "--all"])[0]["id"].to_string();
    t.ok(&["mq", "reject", &mr, "-m", "not like this"]);
    let p = patrol_health(&t);
    assert_eq!(p["last_pass_failed"], false, "after gt mq reject: {p}");
    // Neither is a pass: the last one is still the patrol's.
    assert_eq!(p["last_success"].as_i64(), Some(passed), "{p}");
    let human = t.ok(&["status"]);
    let line = human.lines().find(|l| l.starts_with("patrol:")).unwrap();
    assert!(!line.contains("FAILED") && line.contains("ok"), "{human}");
}

#[test]
fn a_town_moved_under_a_working_agent_converges_and_its_polecat_works_again() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // Generation 1 holds until released, then dies; generation 2 (on the same worktree,
    // in the moved town) finishes.
    t.rig(&scripted_agent("AGENT_HOLD=1\nAGENT_FAIL_GEN=1"), &[]);
    t.configure("retry_backoff = [\"0s\"]", "");
    let a = t.bead("first");
    t.ok(&["sling", &a, "--polecat", "nux"]);
    assert_eq!(t.running_containers().len(), 1);

    let moved: PathBuf = t.dir.path().join("moved");
    std::fs::rename(t.root(), &moved).unwrap();
    std::fs::write(moved.join("agents/api/nux/box/release"), "").unwrap();

    let deadline = Instant::now() + Duration::from_secs(deadline_secs(90));
    loop {
        let p = json_at(&t, &moved, &["patrol"]);
        let bead = json_at(&t, &moved, &["bead", "show", &a]);
        if bead["status"] == "done" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bead never finished in the moved town: {bead}\nlast pass: {p}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ds = json_at(&t, &moved, &["bead", "show", &a])["dispatches"].clone();
    assert_eq!(ds.as_array().unwrap().len(), 2, "{ds}");
    // Retired: the worktree is gone from where the town is now, registration and all.
    assert!(!moved.join("rigs/api/polecats/nux").exists());
    let wts = git(&moved.join("rigs/api/repo"), &["worktree", "list"]);
    assert!(!wts.contains("polecats/nux"), "{wts}");

    // The polecat takes new work.
    let b = at(&t, &moved, &["bead", "create", "--rig", "api", "second"]);
    let b = String::from_utf8_lossy(&b.stdout).trim().to_string();
    let out = at(&t, &moved, &["sling", &b, "--polecat", "nux"]);
    assert!(
        out.status.success(),
        "sling in the moved town: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doctor = at(&t, &moved, &["doctor"]);
    assert!(
        doctor.status.success(),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
}

/// The ids of beads in the order their first dispatch started.
fn started_order(t: &TestTown, ids: &[String]) -> Vec<String> {
    let mut v: Vec<(i64, String)> = ids
        .iter()
        .map(|id| {
            (
                t.dispatches(id)[0]["started_at"].as_i64().unwrap(),
                id.clone(),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

#[test]
fn beads_given_in_one_sling_are_dispatched_in_the_order_given() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent(""), &["--max-polecats", "1"]);
    let mut ids: Vec<String> = (0..5).map(|i| t.bead(&format!("task {i}"))).collect();
    // Not the ids' order, nor their creation order.
    ids.sort();
    ids.reverse();
    ids.swap(1, 3);
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    t.ok(&args);
    t.patrol_until("all done", 120, |t| {
        ids.iter().all(|id| t.bead_status(id) == "done")
    });
    assert_eq!(started_order(&t, &ids), ids);
}

#[test]
fn a_retry_takes_its_turn_behind_beads_queued_before_it_was_due() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("retry_backoff = [\"0s\"]\nmax_attempts = 3", "");
    t.rig(
        &scripted_agent("AGENT_HOLD=1\nAGENT_FAIL_GEN=1"),
        &["--max-polecats", "1"],
    );
    let first = t.bead("first");
    let queued = t.bead("queued");
    t.ok(&["sling", &first, "--polecat", "nux"]);
    let q = t.json(&["sling", &queued]);
    assert_eq!(q[0]["outcome"], "queued", "{q}");
    // The first one dies after the second was queued: its retry is due after it.
    std::fs::write(t.root().join("agents/api/nux/box/release"), "").unwrap();
    t.wait_exited(1);
    let p = t.patrol_json();
    assert_eq!(p["deaths"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(
        p["queued_dispatched"],
        serde_json::json!([queued]),
        "the queued bead takes the slot first: {p}"
    );
    assert_eq!(p["redispatched"], serde_json::json!([]), "{p}");
}

#[test]
fn a_hung_remote_is_tried_once_per_pass_then_backed_off_and_delays_no_other_rig() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("retry_backoff = [\"0s\"]", "push_timeout = \"5s\"");
    // api's remote accepts nothing: its pre-receive hook hangs.
    let remote = t.rig_with_remote(&scripted_agent(""), &[]);
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\nsleep 600\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    // web's remote is fine; one slot, so its second bead waits in the queue.
    let web_remote = t.dir.path().join("web.git");
    git(
        t.dir.path(),
        &["init", "-q", "--bare", web_remote.to_str().unwrap()],
    );
    let src = t.source_repo("web");
    let image = test_image();
    let cmd = scripted_agent("");
    t.ok(&[
        "rig",
        "add",
        "web",
        src.to_str().unwrap(),
        "--image",
        &image,
        "--command",
        &cmd,
        "--remote",
        web_remote.to_str().unwrap(),
        "--max-polecats",
        "1",
    ]);
    let a = t.bead("pushes nowhere");
    let w1 = t
        .ok(&["bead", "create", "--rig", "web", "first"])
        .trim()
        .to_string();
    let w2 = t
        .ok(&["bead", "create", "--rig", "web", "second"])
        .trim()
        .to_string();
    t.ok(&["sling", &a]);
    t.ok(&["sling", &w1, &w2]);
    t.wait_exited(2);

    // One try of the hung remote (not three), and web's work goes on in the same pass.
    let started = Instant::now();
    let p = t.patrol_json();
    let first = started.elapsed();
    let pending = p["sagas_pending"].to_string();
    assert!(pending.contains(&a) && pending.contains("timed out"), "{p}");
    assert!(pending.contains("next try after"), "{p}");
    assert!(p["sagas_finished"].to_string().contains(&w1), "{p}");
    assert_eq!(p["queued_dispatched"], serde_json::json!([w2]), "{p}");
    assert!(
        first < Duration::from_secs(12),
        "the first pass took {first:?}"
    );

    // Backed off: the next pass does not ask the remote at all.
    let started = Instant::now();
    let p = t.patrol_json();
    let second = started.elapsed();
    let pending = p["sagas_pending"].to_string();
    assert!(pending.contains("next try after"), "{p}");
    assert!(
        second < Duration::from_secs(5),
        "a pass with a backed-off remote took {second:?}"
    );
    let backoffs: Vec<_> = t
        .json(&["log", "-n", "1000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "push.backed_off")
        .cloned()
        .collect();
    assert_eq!(backoffs.len(), 1, "{backoffs:?}");
    let failing = t.json(&["status"])["remotes_failing"].to_string();
    assert!(
        failing.contains("api: pushing to") && failing.contains("next try after"),
        "{failing}"
    );
    // One escalation, however many passes wait.
    assert_eq!(t.mayor_mail_subject("cannot push").len(), 1);

    // The remote comes back: after its backoff, the saga pushes and the rig recovers.
    std::fs::remove_file(&hook).unwrap();
    t.patrol_until("the push after the backoff", 60, |t| {
        t.bead_status(&a) == "done"
    });
    let pushed = git(&remote, &["branch", "--list"]);
    assert!(pushed.contains(&a), "{pushed}");
}

fn hold_four(t: &TestTown) -> Vec<String> {
    t.configure(
        "retry_backoff = [\"0s\"]\nmax_attempts = 5",
        "breaker_failures = 2",
    );
    t.rig(&scripted_agent("AGENT_HOLD=1"), &["--max-polecats", "4"]);
    let ids: Vec<String> = (0..4).map(|i| t.bead(&format!("held {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    t.ok(&args);
    assert_eq!(t.running_containers().len(), 4);
    ids
}

#[test]
fn a_stop_of_the_whole_crew_trips_no_breaker() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let ids = hold_four(&t);
    t.ok(&["stop"]);
    t.ok(&["patrol"]);
    t.ok(&["resume"]);
    let p = t.patrol_json();
    assert_eq!(p["breaker_open"], false, "{p}");
    assert_eq!(p["queued_dispatched"].as_array().unwrap().len(), 4, "{p}");
    assert!(t.mayor_mail_id("breaker-").is_empty());
    for id in &ids {
        assert_eq!(t.bead_status(id), "in_progress");
    }
}

#[test]
fn an_engine_killing_every_container_trips_no_breaker() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    hold_four(&t);
    let running = t.running_containers();
    let mut kill = vec!["kill"];
    kill.extend(running.iter().map(String::as_str));
    assert!(docker(&kill).status.success());
    t.wait_exited(4);
    let p = t.patrol_json();
    assert_eq!(p["deaths"].as_array().unwrap().len(), 4, "{p}");
    assert_eq!(p["breaker_open"], false, "{p}");
    assert_eq!(p["redispatched"].as_array().unwrap().len(), 4, "{p}");
    assert!(t.mayor_mail_id("breaker-").is_empty());
}

#[test]
fn an_agent_that_escalates_without_end_buries_no_other_mail_of_the_mayor() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let cmd = "i=0; while [ $i -lt 40 ]; do gt escalate -s \"spam $i\" -m noise >/dev/null; i=$((i+1)); done\n\
               gt done -m finished";
    t.rig(cmd, &[]);
    let id = t.bead("escalates");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    let spam = t.mayor_mail_subject("[escalation] api/");
    assert_eq!(
        spam.len(),
        10 + 1,
        "ten escalations and one notice: {spam:?}"
    );
    assert_eq!(t.mayor_mail_id("esc-capped-").len(), 1);
    let logged = t
        .json(&["log", "-n", "10000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "escalation.capped")
        .count();
    assert_eq!(logged, 30);
}

#[test]
fn a_queued_bead_whose_dispatch_fails_keeps_its_place_in_the_queue() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent("AGENT_HOLD=1"), &["--max-polecats", "1"]);
    let first = t.bead("first");
    let (b, c) = (t.bead("second"), t.bead("third"));
    t.ok(&["sling", &first, &b, &c]);
    t.ok(&[
        "polecat",
        "nuke",
        &t.json(&["polecat", "list"])[0]["name"]
            .as_str()
            .map(|n| format!("api/{n}"))
            .unwrap(),
    ]);
    // The slot is free; b's dispatch fails (its worktree cannot be made).
    let out = t
        .cmd()
        .env("FAILPOINTS", "git.worktree_add=return")
        .args(["--json", "patrol"])
        .output()
        .unwrap();
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(p["errors"].to_string().contains(&b), "{p}");
    let shown = t.json(&["bead", "show", &b]);
    assert_eq!(shown["status"], "open", "{shown}");
    assert_eq!(shown["queued"], true, "still queued: {shown}");
    // The next pass dispatches it, still ahead of the bead queued after it.
    let p = t.patrol_json();
    assert_eq!(p["queued_dispatched"], serde_json::json!([b]), "{p}");
    assert_eq!(t.json(&["bead", "show", &c])["queued"], true);
}

/// The landing push honours the rig's push backoff too: a remote that takes the branch
/// but hangs on its target costs one `push_timeout`, then passes go by without asking it
/// until the next try, the merge request saying why it waits.
#[test]
fn a_hung_landing_push_is_backed_off_not_retried_every_pass() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("retry_backoff = [\"0s\"]", "push_timeout = \"4s\"");
    let remote = t.rig_with_remote(&scripted_agent(""), &["--merge", "auto"]);
    let repo = t.root().join("rigs/api/repo");
    git(&repo, &["push", "-q", remote.to_str().unwrap(), "main"]);
    // The remote takes the agent's branch but hangs on any update of main.
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do [ \"$ref\" = refs/heads/main ] && sleep 600; done\nexit 0\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = t.bead("lands nowhere");
    t.ok(&["sling", &a]);
    // Handed over, then its landing tried once: one push_timeout, and the backoff.
    t.patrol_until("the landing backed off", 90, |t| {
        t.json(&["status"])["remotes_failing"]
            .to_string()
            .contains("next try after")
    });
    // The next passes do not ask the remote: they are quick and say why the MR waits.
    for _ in 0..2 {
        let started = Instant::now();
        let p = t.patrol_json();
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(4),
            "a backed-off pass took {took:?}: {p}"
        );
        assert!(
            p["merge_queue"]["waiting"]
                .to_string()
                .contains("next try after"),
            "{p}"
        );
    }
    // The remote answers again: after the backoff the change lands, once.
    std::fs::remove_file(&hook).unwrap();
    t.patrol_until("landed after the backoff", 90, |t| {
        t.json(&["mq", "list", "--all"])
            .to_string()
            .contains("\"merged\"")
    });
    let log = git(&remote, &["log", "--first-parent", "--format=%s", "main"]);
    assert_eq!(log.matches(&a).count(), 1, "{log}");
    t.doctor_clean();
}
