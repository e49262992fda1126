//! The read models tell the truth (issue 22, "the first hour"): `gt top`, `gt status`,
//! `gt bead show`, `gt patrol --watch` and the mail views agree with each other and with
//! what patrol and sling decide. Real binary, real Docker engine, git and SQLite.

mod support;

use std::io::BufRead;
use support::*;

/// The agent of bead `id` (its latest dispatch's).
fn agent_of(t: &TestTown, id: &str) -> String {
    t.dispatches(id)
        .last()
        .and_then(|d| d["agent"].as_str())
        .unwrap()
        .to_string()
}

/// `gt top --once --json`'s view of the one agent holding a bead, once it is `state`.
fn top_agent(t: &TestTown, state: &str) -> serde_json::Value {
    wait_for(&format!("an agent {state} in gt top"), 60, || {
        let s = t.json(&["top", "--once"]);
        s["rigs"][0]["agents"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["state"] == state).cloned())
    })
}

/// The agent row of `gt top --once`'s plain AGENTS table.
fn top_row(t: &TestTown, agent: &str) -> String {
    let out = t.ok(&["top", "--once"]);
    out.lines()
        .find(|l| l.starts_with(agent))
        .unwrap_or_else(|| panic!("no row of {agent}:\n{out}"))
        .to_string()
}

#[test]
fn try_counts_attempts_as_bead_show_does_after_a_reopen_and_a_drain() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1\nretry_backoff = [\"0s\"]", "");
    // Generation 1 fails; every later one works (and never finishes).
    t.rig(
        "if [ \"$GT_GENERATION\" = 1 ]; then echo giving up; exit 1; fi; echo working; sleep 300",
        &[],
    );
    let id = t.bead("count me");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead to fail", 60, |t| t.bead_status(&id) == "failed");

    // Slinging it again is refused; the hint names what helps.
    let err = t.fails(&["sling", &id], 2);
    assert!(
        err.contains(&format!("gt bead reopen {id}")),
        "the hint names `gt bead reopen`:\n{err}"
    );

    // Reopened: attempts start again, so its next dispatch is attempt 1 of 1.
    t.ok(&["bead", "reopen", &id]);
    t.ok(&["sling", &id]);
    let a = top_agent(&t, "running");
    let agent = agent_of(&t, &id);
    assert_eq!(a["attempt"], 1, "{a}");
    assert_eq!(t.json(&["bead", "show", &id])["attempts"], 1);
    let row = top_row(&t, &agent);
    assert!(row.contains(" 1/1 "), "TRY after a reopen: {row}");

    // A stop spends no attempt: the dispatch after `gt resume` is attempt 1 again.
    t.ok(&["stop"]);
    assert_eq!(t.json(&["bead", "show", &id])["attempts"], 0);
    t.ok(&["resume"]);
    t.patrol_until("the bead running again", 60, |t| {
        t.bead_status(&id) == "in_progress"
    });
    let a = top_agent(&t, "running");
    assert_eq!(a["attempt"], 1, "{a}");
    assert_eq!(t.json(&["bead", "show", &id])["attempts"], 1);
    let row = top_row(&t, &agent);
    assert!(row.contains(" 1/1 "), "TRY after a stop: {row}");

    // `gt bead show` numbers the bead's own attempts, the dispatch id in parentheses.
    let ds = t.dispatches(&id);
    assert_eq!(ds.len(), 3, "{ds:?}");
    let show = t.ok(&["bead", "show", &id]);
    let lines: Vec<&str> = show
        .lines()
        .filter(|l| l.starts_with("attempt ") || l.starts_with("not counted"))
        .collect();
    assert_eq!(lines.len(), 3, "{show}");
    assert!(
        lines[0].starts_with(&format!("attempt 1 (dispatch {})", ds[0]["id"])),
        "{show}"
    );
    assert!(lines[1].starts_with("not counted"), "{show}");
    assert!(
        lines[2].starts_with(&format!("attempt 1 (dispatch {})", ds[2]["id"])),
        "{show}"
    );
    let j = t.json(&["bead", "show", &id]);
    assert_eq!(j["dispatches"][0]["attempt"], 1, "{j}");
    assert!(j["dispatches"][1]["attempt"].is_null(), "{j}");
    assert_eq!(j["dispatches"][2]["attempt"], 1, "{j}");
    assert_eq!(j["dispatches"][2]["id"], ds[2]["id"], "{j}");
    t.ok(&["polecat", "nuke", &agent, "--force"]);
}

#[test]
fn open_and_queued_are_counted_once_alike_in_top_and_status() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig("sleep 300", &["--max-polecats", "1"]);
    let (a, b) = (t.bead("runs"), t.bead("waits for a slot"));
    let _c = t.bead("not slung");
    t.ok(&["sling", &a]);
    t.ok(&["sling", &b]);
    assert!(t.json(&["bead", "show", &b])["queued"] == true);

    let top = t.json(&["top", "--once"]);
    let rig = &top["rigs"][0];
    assert_eq!(rig["open"], 1, "an open bead not queued: {rig}");
    assert_eq!(rig["queued"], 1, "{rig}");
    let out = t.ok(&["top", "--once"]);
    let rigs = out.split("\nRIGS\n").nth(1).unwrap();
    let row: Vec<&str> = rigs.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..5], &["api", "1", "0", "1", "1"], "{out}");

    let status = t.ok(&["status"]);
    let row = status.lines().find(|l| l.starts_with("api ")).unwrap();
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&row[..3], &["api", "1", "1"], "{status}");
    let s = t.json(&["status"]);
    assert_eq!(s["rigs"][0]["open"], 1, "{s}");
    assert_eq!(s["rigs"][0]["queued"], 1, "{s}");
    let agent = agent_of(&t, &a);
    t.ok(&["polecat", "nuke", &agent, "--force"]);
}

#[test]
fn a_later_attempt_shows_the_beads_last_checkpoint_labelled_as_earlier() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("retry_backoff = [\"0s\"]", "");
    t.rig(
        "if [ \"$GT_GENERATION\" = 1 ]; then gt checkpoint -m 'parsed the config'; exit 1; fi; \
         echo second try; sleep 300",
        &[],
    );
    let id = t.bead("resume me");
    t.ok(&["sling", &id]);
    // Before the first one ends nothing says "no checkpoint" when there is one.
    t.patrol_until("the second attempt", 60, |t| {
        t.dispatches(&id).len() == 2 && t.bead_status(&id) == "in_progress"
    });
    let a = top_agent(&t, "running");
    assert_eq!(a["attempt"], 2, "{a}");
    assert_eq!(
        a["checkpoint"]["note"], "parsed the config",
        "the bead's last checkpoint: {a}"
    );
    assert_eq!(a["checkpoint"]["earlier"], true, "{a}");
    let agent = agent_of(&t, &id);
    let row = top_row(&t, &agent);
    assert!(
        row.contains("(attempt 1): parsed the config"),
        "labelled as an earlier attempt's: {row}"
    );
    t.ok(&["polecat", "nuke", &agent, "--force"]);
}

/// A rig that lands on its remote, gated, whose agents all write one file with a hostile
/// name: the second of two beads slung together conflicts with the first.
fn town_with_a_conflict(t: &TestTown) -> (String, String) {
    t.configure("max_attempts = 1", "");
    landing_rig(
        t,
        &scripted_agent("AGENT_FILE=\"$(printf 'c\\033]0;pwn\\007.txt')\""),
        &["--merge", "auto"],
    );
    let (a, b) = (t.bead("first"), t.bead("second"));
    t.ok(&["sling", &a, &b]);
    t.patrol_until("one merged, one failed", 90, |t| {
        let s = [t.bead_status(&a), t.bead_status(&b)];
        s.contains(&"failed".to_string())
            && t.json(&["mq", "list", "--all"])
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["state"] == "merged"))
    });
    if t.bead_status(&a) == "failed" {
        (b, a)
    } else {
        (a, b)
    }
}

#[test]
fn a_multi_line_reason_is_shown_as_its_first_line_escaped_and_goes_when_the_bead_is_reopened() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let (landed, failed) = town_with_a_conflict(&t);
    // A done bead is not slung again: the hint says what gives more work.
    let err = t.fails(&["sling", &landed], 2);
    assert!(err.contains("gt bead create --rig api"), "{err}");
    let problems = |t: &TestTown| -> Vec<serde_json::Value> {
        t.json(&["top", "--once"])["problems"]
            .as_array()
            .unwrap()
            .clone()
    };
    let mr = problems(&t)
        .into_iter()
        .find(|p| p["kind"] == "mr")
        .expect("the failed merge request is a problem");
    let text = mr["text"].as_str().unwrap();
    assert!(!text.contains('\n'), "one line: {text:?}");
    assert!(text.contains("conflicts with main"), "{text}");
    let out = t.ok(&["top", "--once"]);
    assert!(!out.contains("\\n"), "no literal \\n:\n{out}");
    assert!(
        out.contains(r"c\x1b]0;pwn\x07.txt"),
        "the file name escaped:\n{out}"
    );
    assert!(!out.contains('\x1b'), "{out}");

    // Reopened, the bead is worked again: its old merge request is no problem any more.
    t.ok(&["bead", "reopen", &failed]);
    let left: Vec<serde_json::Value> = problems(&t)
        .into_iter()
        .filter(|p| p["kind"] == "mr" || p["kind"] == "bead")
        .collect();
    assert!(left.is_empty(), "stale problems: {left:?}");
}

#[test]
fn status_says_since_when_a_drain_holds_and_its_report_is_a_notice_of_gt() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig("sleep 300", &[]);
    let id = t.bead("stopped");
    t.ok(&["sling", &id]);
    t.ok(&["stop"]);
    let status = t.ok(&["status"]);
    let line = status
        .lines()
        .find(|l| l.contains("drained since"))
        .unwrap_or_else(|| panic!("{status}"));
    let after = line.split("drained since ").nth(1).unwrap();
    let clock: Vec<&str> = after
        .split_whitespace()
        .next()
        .unwrap()
        .split(':')
        .collect();
    assert!(
        clock.len() == 3
            && clock
                .iter()
                .all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
        "a time of day: {line}"
    );
    assert!(
        after.contains(" ago)") || after.contains("(just now)"),
        "{line}"
    );

    let report = t
        .mayor_mail()
        .into_iter()
        .find(|m| m["id"].as_str().is_some_and(|i| i.starts_with("drained-")))
        .expect("the drain's report");
    assert_eq!(report["from"], "patrol", "{report}");
    assert_eq!(report["kind"], "notice", "{report}");
    let notices = t.json(&["mail", "inbox", "--kind", "notice"]);
    assert!(
        notices
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == report["id"]),
        "{notices}"
    );
    t.ok(&["resume"]);
}

#[test]
fn patrol_watch_is_quiet_when_nothing_happens_and_stamps_what_does() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent(""), &[]);
    let mut child = t.spawn(
        &["patrol", "--watch", "--interval", "200ms"],
        &[("NO_COLOR", "1")],
    );
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let passes = |t: &TestTown| {
        t.json(&["log", "--subject", "patrol"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "patrol.finished")
            .count()
    };
    wait_for("three idle passes", 30, || (passes(&t) >= 3).then_some(()));
    let idle: Vec<String> = rx.try_iter().collect();
    assert!(idle.is_empty(), "idle passes print nothing: {idle:?}");

    // Something happens: each line says when.
    let id = t.bead("watched");
    t.ok(&["sling", &id]);
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(deadline_secs(60));
    while !lines
        .iter()
        .any(|l: &String| l.contains(&format!("done: {id}")))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(e) => panic!("no `done: {id}` line ({e}): {lines:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for l in &lines {
        let stamp: Vec<&str> = l.split(' ').next().unwrap().split(':').collect();
        assert!(
            stamp.len() == 3
                && stamp
                    .iter()
                    .all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
            "a line without its time: {l:?} in {lines:?}"
        );
    }
}
