//! Issue 6: convoys with partial-completion policies, on real Docker.

mod support;

use support::*;

/// A town whose rig `api` finishes beads with the scripted agent, except the bead
/// titled "doomed", whose agent always exits 1 (max_attempts 2, no backoff).
fn town() -> (TestTown, Vec<String>) {
    let t = TestTown::new();
    t.configure("max_attempts = 2\nretry_backoff = [\"0s\"]", "");
    let knobs = "case \"$(gt hook)\" in *doomed*) echo doomed >&2; exit 1;; esac";
    // Record only: a convoy lands when its beads are done (merging is tests/mq.rs's).
    t.rig_with_remote(
        &scripted_agent(knobs),
        &["--max-polecats", "4", "--merge", "off"],
    );
    let ids = vec![
        t.bead("doomed"),
        t.bead("fine 1"),
        t.bead("fine 2"),
        t.bead("fine 3"),
    ];
    (t, ids)
}

fn convoy(t: &TestTown, id: &str) -> serde_json::Value {
    t.json(&["convoy", "status", id])
}

fn state_mails(t: &TestTown, cv: &str) -> Vec<String> {
    t.mayor_mail()
        .into_iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .filter(|id| id.starts_with(&format!("convoy-{cv}-")))
        .collect()
}

fn run_policy(
    policy: &str,
    expected_final: &str,
    failed_early: bool,
) -> Option<(TestTown, Vec<String>, String)> {
    if !require_docker() {
        return None;
    }
    let (t, ids) = town();
    let mut args = vec!["convoy", "create", "batch"];
    args.extend(ids.iter().map(String::as_str));
    args.extend(["--policy", policy]);
    let cv = t.ok(&args).trim().to_string();
    assert_eq!(convoy(&t, &cv)["state"], "open");
    t.ok(&["sling", "--convoy", &cv]);
    // Patrol until the doomed bead has failed; a policy that can no longer be met
    // says so at once, before the other beads end.
    t.patrol_until("the doomed bead to fail", 90, |t| {
        t.bead_status(&ids[0]) == "failed"
    });
    let c = convoy(&t, &cv);
    if failed_early {
        assert_eq!(c["state"], "failed", "{policy}: {c}");
    }
    t.patrol_until("every bead to end", 90, |t| {
        ids[1..].iter().all(|id| t.bead_status(id) == "done")
    });
    t.ok(&["patrol"]);
    let c = convoy(&t, &cv);
    assert_eq!(c["state"], expected_final, "{policy}: {c}");
    assert_eq!(c["total"], 4);
    assert_eq!(c["done"], 3);
    assert_eq!(c["failed"], 1);
    assert_eq!(c["policy"], policy);
    assert_eq!(c["beads"].as_array().unwrap().len(), 4);
    let mails = state_mails(&t, &cv);
    assert_eq!(
        mails.len(),
        1,
        "{policy}: one mail for the one change: {mails:?}"
    );
    assert!(mails[0].contains(expected_final), "{mails:?}");
    Some((t, ids, cv))
}

#[test]
fn policy_all_fails_as_soon_as_one_bead_fails() {
    run_policy("all", "failed", true);
}

#[test]
fn reopening_the_failed_bead_reopens_the_convoy_and_each_change_is_mailed() {
    let Some((t, ids, cv)) = run_policy("all", "failed", true) else {
        return;
    };
    let b = t.json(&["bead", "reopen", &ids[0]]);
    assert_eq!(b["status"], "open", "{b}");
    assert_eq!(b["attempts"], 0, "attempts start again: {b}");
    assert_eq!(convoy(&t, &cv)["state"], "open");
    // Given up for good this time: failed again, and said again.
    t.ok(&["bead", "close", &ids[0]]);
    assert_eq!(convoy(&t, &cv)["state"], "failed");
    let mails = state_mails(&t, &cv);
    assert_eq!(mails.len(), 3, "failed, open, failed: {mails:?}");
    let failed = mails.iter().filter(|m| m.contains("-failed-")).count();
    assert_eq!(failed, 2, "{mails:?}");
    // A done bead stays done; an open one has nothing to reopen.
    t.fails(&["bead", "reopen", &ids[1]], 2);
    let fresh = t.bead("fresh");
    t.fails(&["bead", "reopen", &fresh], 3);
}

#[test]
fn policy_best_effort_ends_partial() {
    run_policy("best-effort", "partial", false);
}

#[test]
fn policy_quorum_75_ends_partial() {
    run_policy("quorum=75%", "partial", false);
}

#[test]
fn policy_quorum_100_fails_at_once() {
    run_policy("quorum=100%", "failed", true);
}

#[test]
fn a_convoy_across_two_rigs_lands_when_both_are_done() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent(""), &["--merge", "off"]);
    let web = t.source_repo("web");
    t.ok(&[
        "rig",
        "add",
        "web",
        web.to_str().unwrap(),
        "--image",
        &test_image(),
        "--command",
        &scripted_agent(""),
        "--merge",
        "off",
    ]);
    let a = t.bead("api side");
    let w = t
        .ok(&["bead", "create", "--rig", "web", "web side"])
        .trim()
        .to_string();
    let cv = t
        .ok(&["convoy", "create", "feature", &a, &w])
        .trim()
        .to_string();
    t.ok(&["sling", "--convoy", &cv]);
    t.patrol_until("the convoy to land", 90, |t| {
        convoy(t, &cv)["state"] == "landed"
    });
    assert_eq!(state_mails(&t, &cv).len(), 1);
    let list = t.json(&["convoy", "list"]);
    assert_eq!(list[0]["state"], "landed");
    // Adding a bead reopens it.
    let more = t.bead("one more");
    let added = t.json(&["convoy", "add", &cv, &more, &a]);
    assert_eq!(added["added"], serde_json::json!([more]));
    assert_eq!(added["already"], serde_json::json!([a]));
    assert_eq!(added["convoy"]["state"], "open");
    assert_eq!(added["convoy"]["total"], 3);
}

#[test]
fn a_patrol_killed_while_closing_a_bead_leaves_the_convoy_right() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent(""), &["--merge", "off"]);
    let a = t.bead("only one");
    let cv = t.ok(&["convoy", "create", "solo", &a]).trim().to_string();
    t.ok(&["sling", &a]);
    t.wait_exited(1);
    // Killed right after the push: the next pass records, closes (and lands) the convoy.
    let out = t
        .cmd()
        .arg("patrol")
        .env("FAILPOINTS", "saga.pushed.after=panic")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(convoy(&t, &cv)["state"], "open");
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert_eq!(convoy(&t, &cv)["state"], "landed");
    assert_eq!(state_mails(&t, &cv).len(), 1);
    t.doctor_clean();
}

#[test]
fn bad_convoy_input_is_refused() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let a = t.bead("a");
    t.fails(&["convoy", "create", "x", "api-nope"], 4);
    let err = t.fails(&["convoy", "create", "x", &a, "--policy", "most"], 2);
    assert!(err.contains("unknown convoy policy"), "{err}");
    for q in ["quorum=0%", "quorum=101%"] {
        let err = t.fails(&["convoy", "create", "x", &a, "--policy", q], 2);
        assert!(err.contains("outside 1–100%"), "{err}");
    }
    let cv = t.ok(&["convoy", "create", "x", &a, &a]).trim().to_string();
    assert_eq!(
        t.json(&["convoy", "status", &cv])["total"],
        1,
        "a bead listed twice is one"
    );
    let again = t.json(&["convoy", "add", &cv, &a]);
    assert_eq!(again["convoy"]["total"], 1);
    t.fails(&["convoy", "status", "cv-nope"], 4);
    let err = t.fails(&["convoy", "close", &cv], 3);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        t.json(&["convoy", "close", &cv, "--force"])["state"],
        "closed"
    );
    // A closed bead makes an open convoy of one bead fail (policy all).
    let b = t.bead("b");
    let cv2 = t.ok(&["convoy", "create", "y", &b]).trim().to_string();
    t.ok(&["bead", "close", &b]);
    assert_eq!(t.json(&["convoy", "status", &cv2])["state"], "failed");
}
