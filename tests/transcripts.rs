//! Transcripts: a dispatch's output is kept by the host once its container is gone, and
//! a death comes with its last words.

mod support;

use support::*;

#[test]
fn an_agent_that_cannot_start_says_why_in_its_death_record_and_transcript() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1\nretry_backoff = [\"0s\"]", "");
    t.rig_with_remote("echo 'sh: claude: not found' >&2; exit 127", &[]);
    let id = t.bead("needs a real agent");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    t.wait_exited(1);
    t.patrol_until("the bead to fail", 60, |t| t.bead_status(&id) == "failed");
    let show = t.json(&["bead", "show", &id]);
    let reason = show["dispatches"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("exited with code 127") && reason.contains("claude: not found"),
        "{show}"
    );
    // The container is gone (removed by hand, even); its output is not.
    remove_town_containers(&t);
    let peek = t.ok(&["peek", &agent]);
    assert!(peek.contains("sh: claude: not found"), "{peek}");
    let files: Vec<_> = std::fs::read_dir(t.root().join("transcripts/api").join(&id))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "one transcript per dispatch");
}

#[test]
fn a_finished_agent_can_be_peeked_after_its_container_is_released() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(
        "echo transcript-line-one; echo work > w.txt; gt done -m finished",
        &[],
    );
    let id = t.bead("say something");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    remove_town_containers(&t);
    let peek = t.ok(&["peek", &agent]);
    assert!(peek.contains("transcript-line-one"), "{peek}");
    assert!(remote.exists());
}

fn remove_town_containers(t: &TestTown) {
    let out = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={}", t.id)]);
    for c in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        docker(&["rm", "-f", c]);
    }
    let left = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={}", t.id)]);
    assert!(left.stdout.is_empty());
}

#[test]
fn usage_reported_by_the_agent_cli_is_recorded_and_summed_by_gt_costs() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // What Claude Code's stream-json prints last; then a forged second agent line that
    // must not be believed beyond its own numbers' checks.
    t.rig_with_remote(
        r#"echo '{"type":"result","total_cost_usd":0.25,"usage":{"input_tokens":100,"cache_read_input_tokens":20,"output_tokens":50}}'; echo work > w.txt; gt done -m ok"#,
        &[],
    );
    let a = t.bead("costs one");
    let b = t.bead("costs two");
    t.ok(&["sling", &a, &b]);
    t.patrol_until("both beads done", 60, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    let rows = t.json(&["costs"]);
    assert_eq!(rows[0]["key"], "api", "{rows}");
    assert_eq!(rows[0]["dispatches"], 2, "{rows}");
    assert_eq!(rows[0]["input_tokens"], 240, "{rows}");
    assert_eq!(rows[0]["output_tokens"], 100, "{rows}");
    assert!(
        (rows[0]["cost_usd"].as_f64().unwrap() - 0.5).abs() < 1e-9,
        "{rows}"
    );
    let per_bead = t.json(&["costs", "--by-bead"]);
    assert_eq!(per_bead.as_array().unwrap().len(), 2, "{per_bead}");
    let table = t.ok(&["costs", "--rig", "api", "--since", "1d"]);
    assert!(table.contains("0.5000"), "{table}");
    t.fails(&["costs", "--rig", "nope"], 4);
    // An earlier attempt's output, by bead.
    let out = t.ok(&["peek", "--bead", &a, "--attempt", "1"]);
    assert!(out.contains("total_cost_usd"), "{out}");
    t.fails(&["peek", "--bead", &a, "--attempt", "2"], 4);
}

#[test]
fn a_stalled_agent_is_nudged_once_then_stopped_and_its_attempt_counted() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure(
        "max_attempts = 1\nretry_backoff = [\"0s\"]",
        "stall_timeout = \"2s\"",
    );
    // Says one line, then nothing, ever (an agent CLI waiting on an API that never answers).
    t.rig_with_remote("echo started; sleep 300", &[]);
    let id = t.bead("hangs");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    t.patrol_until("the nudge", 30, |t| {
        t.json(&["mail", "inbox", "--as", &agent])
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["subject"].as_str().unwrap_or("").contains("silent for"))
    });
    assert_eq!(t.bead_status(&id), "in_progress", "nudged, not stopped yet");
    t.patrol_until("the bead to fail", 30, |t| t.bead_status(&id) == "failed");
    let show = t.json(&["bead", "show", &id]);
    let reason = show["dispatches"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stalled"), "{show}");
    assert_eq!(
        show["attempts"], 1,
        "the stop counted as an attempt: {show}"
    );
    let nudges = t
        .json(&["mail", "inbox", "--as", &agent])
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["subject"].as_str().unwrap_or("").contains("silent for"))
        .count();
    assert_eq!(nudges, 1);
    assert!(t.running_containers().is_empty());
}

#[test]
fn peek_follow_prints_what_the_agent_writes_until_it_exits() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        "i=0; while [ $i -lt 10 ]; do echo line-$i; i=$((i + 1)); sleep 0.1; done; printf 'esc \\033[2J end\\n'",
        &[],
    );
    let id = t.bead("talks a while");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    // Returns by itself once the container exits, with everything it wrote.
    let out = t.ok(&["peek", "-f", &agent]);
    for i in 0..10 {
        assert!(out.contains(&format!("line-{i}")), "{out}");
    }
    assert!(
        out.contains("esc \\x1b[2J end") && !out.contains('\x1b'),
        "{out}"
    );
}

#[test]
fn budgets_stop_new_dispatches_and_tell_the_mayor_once() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // Each attempt reports $0.25 and fails: over a $0.2 bead budget after one.
    t.configure(
        "max_attempts = 5\nretry_backoff = [\"0s\"]\nmax_cost_per_bead = 0.2\nmax_cost_per_day = 0.6",
        "",
    );
    t.rig_with_remote(
        r#"echo '{"type":"result","total_cost_usd":0.25,"usage":{"input_tokens":10,"output_tokens":5}}'; if [ "$GT_BEAD" = "$FAIL_BEAD" ]; then exit 1; fi; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let doomed = t.bead("fails and costs");
    t.ok(&["rig", "set", "api", "--env", &format!("FAIL_BEAD={doomed}")]);
    t.ok(&["sling", &doomed]);
    t.patrol_until("the bead given up over its budget", 60, |t| {
        t.bead_status(&doomed) == "failed"
    });
    assert_eq!(
        t.dispatches(&doomed).len(),
        1,
        "not re-dispatched over budget"
    );
    let told = t.mayor_mail_subject("budget reached");
    assert_eq!(told.len(), 1, "{told:?}");
    // The daily budget: $0.25 spent; two more beads reach $0.75 >= $0.6.
    let a = t.bead("one");
    let b = t.bead("two");
    t.ok(&["sling", &a, &b]);
    t.patrol_until("both done", 60, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    let c = t.bead("three");
    let err = t.fails(&["sling", &c], 2);
    assert!(err.contains("over the daily budget"), "{err}");
    assert_eq!(t.bead_status(&c), "open");
    t.fails(&["sling", &c], 2);
    assert_eq!(
        t.mayor_mail_subject("budget reached").len(),
        2,
        "one per bead, one per day"
    );
}

#[test]
fn a_secret_the_agent_prints_is_never_stored_in_its_transcript() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let value = "tok-9c1e5b7a3f0d2468";
    let out = t
        .cmd()
        .args(["secret", "set", "MY_TOKEN"])
        .write_stdin(value)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    t.rig_with_remote(
        r#"echo "my token is $MY_TOKEN"; echo w > w.txt; gt done -m ok"#,
        &["--secret", "MY_TOKEN"],
    );
    let id = t.bead("leaky");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    let dir = t.root().join("transcripts/api").join(&id);
    let kept: String = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(kept.contains("my token is [secret MY_TOKEN]"), "{kept}");
    assert!(!kept.contains(value));
}
