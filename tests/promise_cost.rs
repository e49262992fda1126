//! Costs, transcripts and redaction keep their promise: usage is read from the whole
//! output and kept even when the transcript cannot be; a forged cost is bounded and stops
//! only its own rig; no view shows a secret an agent printed or wrote; the engine keeps
//! at most 10 MB of an agent's output.

mod support;

use support::*;

/// `gt costs --json` of rig `rig` (its one row).
fn costs_of(t: &TestTown, rig: &str) -> serde_json::Value {
    let rows = t.json(&["costs", "--rig", rig]);
    rows.as_array()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn set_secret(t: &TestTown, name: &str, value: &str) {
    let out = t
        .cmd()
        .args(["secret", "set", name])
        .write_stdin(value)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A second rig, `web`, from a fresh repo, running `command`.
fn rig_web(t: &TestTown, command: &str) {
    let src = t.source_repo("web");
    t.ok(&[
        "rig",
        "add",
        "web",
        src.to_str().unwrap(),
        "--image",
        &test_image(),
        "--memory",
        "256m",
        "--command",
        command,
    ]);
}

#[test]
fn codex_usage_is_summed_over_the_whole_output_not_the_kept_tail() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // 400 turns of 1000 input and 10 output tokens, each after 3 KB of other output:
    // 1.2 MB in all, more than the 1 MiB a transcript keeps.
    t.rig_with_remote(
        r#"pad=$(printf '%3000s' x); i=0; while [ $i -lt 400 ]; do echo "$pad"; echo '{"type":"turn.completed","usage":{"input_tokens":1000,"cached_input_tokens":0,"output_tokens":10}}'; i=$((i + 1)); done; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let id = t.bead("four hundred turns");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 90, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    assert_eq!(row["input_tokens"], 400_000, "{row}");
    assert_eq!(row["output_tokens"], 4_000, "{row}");
    // The transcript itself stays capped.
    let kept = std::fs::read_dir(t.root().join("transcripts/api").join(&id))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .max()
        .unwrap();
    assert!(kept <= 1 << 20, "{kept}");
}

#[test]
fn usage_is_recorded_when_the_transcript_cannot_be_written() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // The transcripts live on a disk with no room for one.
    let Some(_disk) = SmallDisk::mount(&t.root().join("transcripts"), "64k") else {
        return;
    };
    t.rig_with_remote(
        r#"pad=$(printf '%1000s' x); i=0; while [ $i -lt 300 ]; do echo "$pad"; i=$((i + 1)); done; echo '{"type":"result","total_cost_usd":0.25,"usage":{"input_tokens":100,"output_tokens":50}}'; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let id = t.bead("costs on a full disk");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    assert!(
        (row["cost_usd"].as_f64().unwrap_or(0.0) - 0.25).abs() < 1e-9,
        "the cost is kept without its transcript: {row}"
    );
    assert_eq!(row["input_tokens"], 100, "{row}");
}

#[test]
fn an_agent_nuked_while_working_keeps_what_it_said_while_stopping() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // Like a CLI that reports its usage as it ends on SIGTERM.
    t.rig_with_remote(
        r#"trap 'echo "{\"type\":\"result\",\"total_cost_usd\":0.05,\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}"; echo said-while-stopping; exit 0' TERM; echo started; sleep 300 & wait $!"#,
        &[],
    );
    let id = t.bead("works until nuked");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the agent to start", 30, || {
        t.ok(&["peek", &agent]).contains("started").then_some(())
    });
    t.ok(&["polecat", "nuke", &agent, "--force"]);
    let row = costs_of(&t, "api");
    assert_eq!(row["input_tokens"], 7, "{row}");
    assert!(
        (row["cost_usd"].as_f64().unwrap_or(0.0) - 0.05).abs() < 1e-9,
        "{row}"
    );
    let out = t.ok(&["peek", "--bead", &id]);
    assert!(out.contains("said-while-stopping"), "{out}");
}

/// `gt stop` reads an agent's output (what it printed while stopping included) before
/// it removes its container.
#[test]
fn gt_stop_keeps_the_transcript_and_usage_of_the_agents_it_stops() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"trap 'echo "{\"type\":\"result\",\"total_cost_usd\":0.05,\"usage\":{\"input_tokens\":7,\"output_tokens\":3}}"; exit 0' TERM; echo started; sleep 300 & wait $!"#,
        &[],
    );
    let id = t.bead("works until stopped");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the agent to start", 30, || {
        t.ok(&["peek", &agent]).contains("started").then_some(())
    });
    t.ok(&["stop"]);
    let row = costs_of(&t, "api");
    assert_eq!(row["input_tokens"], 7, "{row}");
    let out = t.ok(&["peek", "--bead", &id]);
    assert!(out.contains("started"), "{out}");
}

#[test]
fn a_forged_cost_is_clamped_flagged_and_never_stops_another_rig() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_cost_per_day = 5.0\nmax_cost_per_dispatch = 150.0", "");
    // Rig api's agent claims $999,999 (with a little output around it).
    t.rig_with_remote(
        r#"i=0; while [ $i -lt 200 ]; do echo "working on it, step $i of a long job"; i=$((i + 1)); done; echo '{"type":"result","total_cost_usd":999999,"usage":{"input_tokens":10,"output_tokens":5}}'; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    rig_web(&t, "echo w > w.txt; gt done -m ok");
    let forged = t.bead("forges its cost");
    t.ok(&["sling", &forged]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&forged) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    let kept = row["cost_usd"].as_f64().unwrap();
    // About 7 KB of output: about $7 is plausible, not $999,999.
    assert!((5.0..20.0).contains(&kept), "bounded: {row}");
    let flagged: Vec<_> = t
        .json(&["log"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "usage.flagged")
        .cloned()
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(t.mayor_mail_id("usage-flagged-").len(), 1);
    // Another rig dispatches as before.
    let other = t.ok(&["bead", "create", "--rig", "web", "unrelated work"]);
    let other = other.trim();
    t.ok(&["sling", other]);
    // The forging rig pays for its own claim: over the daily budget for it alone.
    let next = t.bead("next api bead");
    let err = t.fails(&["sling", &next], 2);
    assert!(
        err.contains("daily budget") && err.contains("rig api's flagged usage"),
        "{err}"
    );
    assert_eq!(t.bead_status(&next), "open");
}

#[test]
fn an_agent_cannot_hide_its_cost_behind_a_later_result_or_noise() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // The real report, then a forged one of nothing, then 2 MB of noise.
    t.rig_with_remote(
        r#"echo '{"type":"result","total_cost_usd":0.3,"usage":{"input_tokens":1000,"output_tokens":100}}'; echo '{"type":"result","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}'; pad=$(printf '%2000s' x); i=0; while [ $i -lt 1000 ]; do echo "$pad"; i=$((i + 1)); done; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let id = t.bead("hides its cost");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 90, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    assert!(
        (row["cost_usd"].as_f64().unwrap_or(0.0) - 0.3).abs() < 1e-9,
        "{row}"
    );
    assert_eq!(row["input_tokens"], 1000, "{row}");
}

#[test]
fn a_claude_result_line_over_64_kib_is_counted() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // A final message of 100 KB inside the result line.
    t.rig_with_remote(
        r#"big=$(printf '%100000s' x); echo "{\"type\":\"result\",\"result\":\"$big\",\"total_cost_usd\":0.4,\"usage\":{\"input_tokens\":500,\"output_tokens\":25000}}"; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let id = t.bead("long final answer");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    if row.is_null() {
        let peek = t.run(&["peek", "--bead", &id]);
        let log = t.run(&["log", "-n", "60"]);
        panic!(
            "no usage; transcript {} bytes, ends {:?}\nstderr {}\nlog {}",
            peek.stdout.len(),
            String::from_utf8_lossy(&peek.stdout[peek.stdout.len().saturating_sub(300)..]),
            String::from_utf8_lossy(&peek.stderr),
            String::from_utf8_lossy(&log.stdout)
        );
    }
    assert_eq!(row["output_tokens"], 25_000, "{row}");
    assert!(
        (row["cost_usd"].as_f64().unwrap_or(0.0) - 0.4).abs() < 1e-9,
        "{row}"
    );
}

#[test]
fn peek_follow_redacts_a_secret_split_by_the_engines_16k_line_split() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let value = "tok-9c1e5b7a3f0d2468aa";
    set_secret(&t, "MY_TOKEN", value);
    // Docker splits a line at 16 KiB: the value straddles the split.
    t.rig_with_remote(
        r#"sleep 1; pad=$(printf '%16374s' x); i=0; while [ $i -lt 3 ]; do echo "$pad$MY_TOKEN tail"; i=$((i + 1)); sleep 0.2; done"#,
        &["--secret", "MY_TOKEN"],
    );
    let id = t.bead("leaks across a split");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    let out = t.ok(&["peek", "-f", &agent]);
    assert!(
        out.contains("[secret MY_TOKEN] tail"),
        "{}",
        &out[out.len().saturating_sub(300)..]
    );
    assert!(!out.contains(&value[..10]), "a part of the value shown");
    let raw = t.ok(&["peek", "-f", "--raw", &agent]);
    assert!(
        !raw.contains(&value[..10]),
        "a part of the value shown (raw)"
    );
}

#[test]
fn every_view_of_agent_text_redacts_a_secret_it_holds() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let value = "tok-77f3a9c2e1b0d4e5ff";
    set_secret(&t, "MY_TOKEN", value);
    t.rig_with_remote(
        r#"gt checkpoint -m "note with $MY_TOKEN"; gt mail send mayor -s "subject $MY_TOKEN" -m "body $MY_TOKEN"; echo w > w.txt; gt done -m "done with $MY_TOKEN""#,
        &["--secret", "MY_TOKEN"],
    );
    let id = t.bead("writes its key everywhere");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let show = t.ok(&["bead", "show", &id]);
    assert!(show.contains("[secret MY_TOKEN]"), "{show}");
    let mail = t.mayor_mail();
    let from_agent = mail
        .iter()
        .find(|m| m["subject"].as_str().unwrap_or("").starts_with("subject"))
        .expect("the agent's mail");
    let mail_id = from_agent["id"].as_str().unwrap().to_string();
    for args in [
        vec!["bead", "show", &id],
        vec!["--json", "bead", "show", &id],
        vec!["mail", "inbox", "--as", "mayor"],
        vec!["--json", "mail", "inbox", "--as", "mayor"],
        vec!["mail", "read", &mail_id],
        vec!["--json", "mail", "read", &mail_id],
        vec!["log"],
        vec!["--json", "log"],
        vec!["mq", "list", "--all"],
        vec!["--json", "status"],
        vec!["polecat", "list"],
        vec!["top", "--once"],
        vec!["--json", "top", "--once"],
        vec!["peek", "--bead", &id],
    ] {
        let out = t.run(&args);
        assert!(out.status.success(), "gt {}: {out:?}", args.join(" "));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains(value),
            "gt {} shows the secret: {text}",
            args.join(" ")
        );
    }
}

#[test]
fn a_flooding_agent_leaves_at_most_10_mb_of_log() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // 40 MB of output, then it waits: its log is measured while it lives.
    t.rig_with_remote(
        r#"pad=$(printf '%1000s' x); i=0; while [ $i -lt 40000 ]; do echo "$pad"; i=$((i + 1)); done; echo flood-done; sleep 300"#,
        &[],
    );
    let id = t.bead("floods");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the flood to end", 120, || {
        t.ok(&["peek", "-n", "3", &agent])
            .contains("flood-done")
            .then_some(())
    });
    let name = format!("gt-{}-api-{}", t.id, polecat_name(&agent));
    let out = docker(&["inspect", "-f", "{{.LogPath}}", &name]);
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dir = std::path::Path::new(&path).parent().unwrap().to_path_buf();
    let total: u64 = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(total <= 10_000_000, "{total} bytes of log kept");
    assert!(total >= 1_000_000, "the recent output is kept: {total}");
    t.ok(&["polecat", "nuke", &agent, "--force"]);
}
