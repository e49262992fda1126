//! Issue 21: stopping, draining and mail keep their promise, on a real Docker engine.
//! A `gt resume` ends the drain that waits (item 7); `gt stop` signals every agent at
//! once and waits one grace (item 8); the output and usage of a stopped agent are kept
//! (item 4); mail meant for one dispatch ends with it (item 10); one sender cannot flood
//! another's inbox, and `gt prime` stays within the kernel's argument limit (item 14).

mod support;

use std::time::{Duration, Instant};
use support::*;

/// An agent that reads its prime, says so, and works until it is stopped (it ignores
/// the drain's mail).
const HOLDS: &str = r#"gt prime > /dev/null
echo "working on $GT_BEAD"
while :; do sleep 0.1; done
"#;

fn agent_of(t: &TestTown, bead: &str) -> String {
    wait_for("the bead's agent to run", 60, || {
        t.json(&["polecat", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["bead"] == bead && p["state"] == "running")
            .map(|p| {
                format!(
                    "{}/{}",
                    p["rig"].as_str().unwrap(),
                    p["name"].as_str().unwrap()
                )
            })
    })
}

/// Wait until `gt peek AGENT` shows `text`; returns what it showed.
fn peek_until(t: &TestTown, agent: &str, text: &str) -> String {
    wait_for(&format!("{agent} to print {text:?}"), 60, || {
        let out = t.run(&["peek", agent, "--raw"]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.contains(text).then_some(s)
    })
}

fn inbox_dir(t: &TestTown, agent: &str) -> std::path::PathBuf {
    let (rig, name) = agent.split_once('/').unwrap();
    t.root()
        .join("agents")
        .join(rig)
        .join(name)
        .join("box/inbox")
}

fn events(t: &TestTown, kind: &str) -> Vec<serde_json::Value> {
    t.json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Item 7: a `gt resume` while `gt drain --timeout` waits ends that drain; it stops no
/// agent after the resume, neither the one it had asked nor one dispatched since.
#[test]
fn a_resume_while_a_drain_waits_ends_that_drain_and_stops_no_one() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(HOLDS, &[]);
    let first = t.bead("before the drain");
    t.ok(&["sling", &first]);
    let agent = agent_of(&t, &first);
    peek_until(&t, &agent, "working on");

    let mut drain = t.spawn(&["--json", "drain", "--timeout", "20s"], &[]);
    let inbox = inbox_dir(&t, &agent);
    wait_for("the drain to ask the agent to stop", 60, || {
        std::fs::read_dir(&inbox)
            .ok()?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("drain-"))
            .then_some(())
    });
    let out = t.ok(&["resume"]);
    assert!(out.contains("lifted"), "{out}");
    let resumed = Instant::now();
    let second = t.bead("after the resume");
    t.ok(&["sling", &second]);
    agent_of(&t, &second);

    // The drain sees the resume and ends, long before its deadline.
    let status = wait_for("the drain to end", 60, || drain.try_wait().unwrap());
    let waited = resumed.elapsed();
    let mut stdout = String::new();
    std::io::Read::read_to_string(drain.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "gt drain: {status:?}\n{stdout}");
    assert_eq!(t.bead_status(&first), "in_progress", "{stdout}");
    assert_eq!(t.bead_status(&second), "in_progress", "{stdout}");
    assert_eq!(t.running_containers().len(), 2, "{stdout}");
    assert!(events(&t, "drain.parked").is_empty(), "{stdout}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["lifted"], true, "{r}");
    assert!(r["parked"].as_array().unwrap().is_empty(), "{r}");
    assert!(
        waited < Duration::from_secs(15),
        "the drain waited {waited:?} after the resume"
    );
    // The ask is withdrawn: its mail acknowledged and out of the inbox, the stop marker
    // gone, and a mail tells the agent to carry on.
    let mail = t.json(&["mail", "inbox", "--as", &agent]);
    let of = |prefix: &str| -> Vec<serde_json::Value> {
        mail.as_array()
            .unwrap()
            .iter()
            .filter(|m| m["id"].as_str().unwrap().starts_with(prefix))
            .cloned()
            .collect()
    };
    let asked = of("drain-");
    assert_eq!(asked.len(), 1, "{mail}");
    assert!(!asked[0]["acked"].is_null(), "{mail}");
    let carry_on = of("resumed-");
    assert_eq!(carry_on.len(), 1, "{mail}");
    assert!(carry_on[0]["acked"].is_null(), "{mail}");
    let files: Vec<String> = std::fs::read_dir(&inbox)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!files.iter().any(|f| f.starts_with("drain-")), "{files:?}");
    assert!(files.iter().any(|f| f.starts_with("resumed-")), "{files:?}");
    assert!(!inbox.parent().unwrap().join("stop.json").exists());
    // Patrol does not finish a drain that was lifted either.
    let p = t.patrol_json();
    assert!(p["drained"].as_array().unwrap().is_empty(), "{p}");
    assert_eq!(t.running_containers().len(), 2);
    assert_eq!(events(&t, "drain.withdrawn").len(), 1);
    t.doctor_clean();

    // A drain begun after the resume asks again, the withdrawn one included.
    let r = t.json(&["drain", "--timeout", "2s"]);
    assert_eq!(r["asked"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["parked"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["lifted"], false, "{r}");
}

/// Agents that trap and ignore SIGTERM: each stop waits its whole grace (10 s).
const IGNORES_TERM: &str = r#"trap '' TERM
gt prime > /dev/null
echo "deaf to SIGTERM"
while :; do sleep 0.1; done
"#;

/// Item 8: `gt stop` signals every agent first, then waits one grace for all of them.
#[test]
fn stop_signals_every_agent_at_once_and_waits_one_grace() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(IGNORES_TERM, &["--max-polecats", "4"]);
    let beads: Vec<String> = (1..=4).map(|i| t.bead(&format!("job {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(beads.iter().map(String::as_str));
    t.ok(&args);
    for b in &beads {
        let agent = agent_of(&t, b);
        peek_until(&t, &agent, "deaf to SIGTERM");
    }

    let started = Instant::now();
    let r = t.json(&["stop"]);
    let took = started.elapsed();
    eprintln!("gt stop of 4 agents ignoring SIGTERM took {took:?}");
    assert_eq!(r["parked"].as_array().unwrap().len(), 4, "{r}");
    assert!(t.running_containers().is_empty());
    for b in &beads {
        assert_eq!(t.bead_status(b), "open");
    }
    // One grace (10 s) for all four, not one each (40 s); the bound is loose on purpose.
    assert!(
        took < Duration::from_secs(20),
        "gt stop of 4 agents ignoring SIGTERM took {took:?}"
    );
    t.doctor_clean();
}

/// An agent that reports its usage as Claude Code does, then works until stopped; told
/// to stop, it says so before it ends.
const REPORTS_USAGE: &str = r#"trap 'echo "stopping: caught SIGTERM"; exit 0' TERM
gt prime > /dev/null
echo '{"type":"result","usage":{"input_tokens":1200,"output_tokens":34},"total_cost_usd":0.25}'
echo "working, usage reported"
while :; do sleep 0.1; done
"#;

/// Item 4 (the drain part): an agent stopped by `gt stop` (and by a drain's deadline)
/// keeps its transcript, what it printed while stopping included, and its usage.
#[test]
fn stop_and_drain_keep_the_transcript_and_usage_of_the_agents_they_stop() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(REPORTS_USAGE, &[]);
    for how in [&["stop"][..], &["drain", "--timeout", "1s"][..]] {
        let id = t.bead("reports usage");
        t.ok(&["sling", &id]);
        let agent = agent_of(&t, &id);
        peek_until(&t, &agent, "working, usage reported");
        let r = t.json(how);
        assert_eq!(r["parked"].as_array().unwrap().len(), 1, "{how:?}: {r}");
        t.ok(&["resume"]);

        let out = t.ok(&["peek", "--bead", &id, "--raw"]);
        assert!(out.contains("working, usage reported"), "{how:?}: {out}");
        assert!(
            out.contains("stopping: caught SIGTERM"),
            "{how:?}: what it printed while stopping is kept: {out}"
        );
        let costs = t.json(&["costs", "--by-bead"]);
        let row = costs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == id.as_str())
            .unwrap_or_else(|| panic!("{how:?}: no usage for {id}: {costs}"))
            .clone();
        assert_eq!(row["input_tokens"], 1200, "{row}");
        assert_eq!(row["output_tokens"], 34, "{row}");
        assert_eq!(row["cost_usd"], 0.25, "{row}");
        // Parked, not re-dispatched (the bead stays open until a patrol).
        assert_eq!(t.bead_status(&id), "open");
    }
}

/// An agent that obeys a stop it finds in its prime (as a real one would), and works
/// until it is stopped otherwise.
const OBEYS_PRIME: &str = r#"gt prime > /tmp/prime.txt
if grep -q "stop for now" /tmp/prime.txt; then
  echo "OBEYED A STOP IN ITS PRIME"
  exit 0
fi
echo "prime is clean: $GT_BEAD"
while :; do sleep 0.1; done
"#;

/// Item 10: the drain's "stop for now" mail belongs to the dispatch it stopped; after
/// `gt resume` the next agent under the same name (on another bead) never sees it.
#[test]
fn a_drain_mail_ends_with_its_dispatch_and_never_reaches_the_next_one() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(OBEYS_PRIME, &[]);
    let first = t.bead("drained");
    t.ok(&["sling", &first]);
    let agent = agent_of(&t, &first);
    peek_until(&t, &agent, "prime is clean");

    let r = t.json(&["drain", "--timeout", "2s"]);
    assert_eq!(r["asked"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["parked"].as_array().unwrap().len(), 1, "{r}");
    // Ended with its dispatch: acknowledged, its inbox file gone.
    let mail = t.json(&["mail", "inbox", "--as", &agent]);
    let drain_mail: Vec<_> = mail
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"].as_str().unwrap().starts_with("drain-"))
        .collect();
    assert_eq!(drain_mail.len(), 1, "{mail}");
    assert!(!drain_mail[0]["acked"].is_null(), "{mail}");
    let left: Vec<_> = std::fs::read_dir(inbox_dir(&t, &agent))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("drain-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    t.ok(&["resume"]);
    let second = t.bead("another bead, same polecat");
    t.ok(&["sling", &second, "--polecat", polecat_name(&agent)]);
    assert_eq!(agent_of(&t, &second), agent);
    let out = wait_for("the next agent to read its prime", 60, || {
        let out = t.run(&["peek", &agent, "--raw"]);
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        (s.contains("OBEYED") || s.contains(&format!("prime is clean: {second}"))).then_some(s)
    });
    assert!(!out.contains("OBEYED"), "{out}");
    assert_eq!(t.bead_status(&second), "in_progress");
}

/// Item 14: 600 mails from a polecat of another rig: the sender is capped, and the
/// flooded polecat's next dispatch still runs `"$(gt prime)"` as one argument.
#[test]
fn a_mail_flood_from_another_rig_is_capped_and_prime_fits_in_an_argument() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // `git rev-parse --sq-quote ARG` is a real exec of the prime as one argument, as
    // `claude -p "$(gt prime)"` is.
    t.rig(
        r#"set -eu
git rev-parse --sq-quote "$(gt prime)" > /tmp/prime.txt
echo "prime-bytes $(wc -c < /tmp/prime.txt)"
gt done -m ok
"#,
        &[],
    );
    let first = t.bead("makes the polecat");
    t.ok(&["sling", &first]);
    t.patrol_until("the first bead to be done", 60, |t| {
        t.bead_status(&first) == "done"
    });
    // Its polecat, idle now (it ran too briefly to be caught running).
    let polecats = t.json(&["polecat", "list", "--rig", "api"]);
    assert_eq!(polecats.as_array().unwrap().len(), 1, "{polecats}");
    let victim = format!("api/{}", polecats[0]["name"].as_str().unwrap());

    let pad = "x".repeat(200);
    let flood = format!(
        r#"set -eu
for i in $(seq 600); do gt mail send {victim} -s "flood $i {pad}" -m "body $i" > /dev/null; done
echo flooded
while :; do sleep 0.1; done
"#
    );
    let src = t.source_repo("web");
    t.ok(&[
        "rig",
        "add",
        "web",
        src.to_str().unwrap(),
        "--image",
        &test_image(),
        "--command",
        &flood,
    ]);
    let w = t
        .ok(&["bead", "create", "--rig", "web", "flood"])
        .trim()
        .to_string();
    t.ok(&["sling", &w]);
    let flooder = agent_of(&t, &w);
    wait_for("the flood to be sent", 200, || {
        let out = t.run(&["peek", &flooder, "--raw"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("flooded")
            .then_some(())
    });
    let (rig, name) = flooder.split_once('/').unwrap();
    let outbox = t.root().join("agents").join(rig).join(name).join("outbox");
    t.patrol_until("the flood to be ingested", 120, |_| {
        std::fs::read_dir(&outbox)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().ends_with(".json"))
    });

    // The flooded polecat's next dispatch runs and finishes.
    let second = t.bead("after the flood");
    t.ok(&["sling", &second, "--polecat", polecat_name(&victim)]);
    t.patrol_until("the next dispatch to end", 120, |t| {
        t.bead_status(&second) == "done"
            || t.dispatches(&second)
                .iter()
                .any(|d| !d["ended_at"].is_null())
    });
    let transcript = t.ok(&["peek", "--bead", &second, "--raw"]);
    assert_eq!(t.bead_status(&second), "done", "{transcript}");
    let bytes: usize = transcript
        .lines()
        .find_map(|l| l.strip_prefix("prime-bytes "))
        .unwrap_or_else(|| panic!("no prime-bytes in {transcript}"))
        .trim()
        .parse()
        .unwrap();
    assert!(bytes < 64 << 10, "prime of {bytes} bytes");

    // The sender is capped per inbox; the refusals are recorded on it.
    let got = t.json(&["mail", "inbox", "--as", &victim, "--from", &flooder]);
    assert_eq!(got.as_array().unwrap().len(), 50, "{got}");
    let refused = events(&t, "request.rejected");
    assert!(
        refused.iter().any(|e| e["subject"] == flooder.as_str()
            && e["data"]["reason"].as_str().unwrap().contains("unread")),
        "{refused:?}"
    );

    // A person is capped the same way, with a hint (exit 2), and nothing is stored.
    for i in 0..49 {
        t.ok(&[
            "mail",
            "send",
            &victim,
            "-s",
            &format!("note {i}"),
            "-m",
            "hi",
        ]);
    }
    t.ok(&[
        "mail", "send", &victim, "-s", "x", "-m", "y", "--id", "again",
    ]);
    let err = t.fails(
        &["mail", "send", &victim, "-s", "one too many", "-m", "hi"],
        2,
    );
    assert!(
        err.contains("50 unread") && err.contains("gt mail ack --all --as"),
        "{err}"
    );
    let mine = t.json(&["mail", "inbox", "--as", &victim, "--from", "human"]);
    assert_eq!(mine.as_array().unwrap().len(), 50, "{mine}");
    // A repeat of a stored message is still a repeat, not a refusal.
    let out = t.ok(&[
        "mail", "send", &victim, "-s", "x", "-m", "y", "--id", "again",
    ]);
    assert!(out.contains("already sent"), "{out}");
}
