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
        !t.json(&["mq", "list"]).as_array().unwrap().is_empty()
    });
    t.ok(&["patrol"]);
    let p = patrol_health(&t);
    assert_eq!(p["last_pass_failed"], false, "{p}");
    let passed = p["last_success"].as_i64().unwrap();

    t.ok(&["mq", "run"]);
    let p = patrol_health(&t);
    assert_eq!(p["last_pass_failed"], false, "after gt mq run: {p}");
    assert!(p["failure"].is_null(), "{p}");

    let mr = t.json(&["mq", "list"])[0]["id"].to_string();
    t.ok(&["mq", "reject", &mr, "-m", "not like this"]);
    let p = patrol_health(&t);
    assert_eq!(p["last_pass_failed"], false, "after gt mq reject: {p}");
    // Neither is a pass: the last one is still the patrol's.
    assert_eq!(p["last_success"].as_i64(), Some(passed), "{p}");
    let human = t.ok(&["status"]);
    assert!(!human.contains("FAILED"), "{human}");
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
        .map(|id| (t.dispatches(id)[0]["started_at"].as_i64().unwrap(), id.clone()))
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
