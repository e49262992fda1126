//! Issue 13, running a crew day to day: truthful, readable status (the engine asked, the
//! last successful patrol pass, relative times, colour on terminals only, idle polecats
//! hidden, queued beads apart), mail a person can handle (filters, ack --all, digests),
//! and patrol as a service (install/uninstall with a fake crontab and systemctl, doctor's
//! warning when nothing runs patrol).

mod support;

use std::path::{Path, PathBuf};
use support::*;

const DEAD_ENGINE: &str = "unix:///nonexistent/docker.sock";

/// Run gt with extra environment; returns (exit code, stdout, stderr).
fn run_env(t: &TestTown, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut c = t.cmd();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dead_engine(t: &TestTown, args: &[&str]) -> (Option<i32>, String, String) {
    run_env(t, args, &[("DOCKER_HOST", DEAD_ENGINE)])
}

/// Move every event of `kind` `mins` minutes into the past: the clock of a town that
/// has waited, without waiting.
fn age_events(t: &TestTown, kind: &str, mins: i64) {
    let db = rusqlite::Connection::open(t.root().join(".gt/town.db")).unwrap();
    db.execute(
        "UPDATE events SET at = at - ?2 WHERE kind = ?1",
        rusqlite::params![kind, mins * 60_000],
    )
    .unwrap();
}

#[test]
fn status_and_polecat_list_say_when_the_engine_does_not_answer() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig("sleep 300", &["--max-polecats", "1"]);
    let working = t.bead("works");
    let waiting = t.bead("waits for a free polecat");
    t.bead("not slung");
    t.ok(&["sling", &working]);
    t.ok(&["sling", &waiting]);
    t.ok(&["patrol"]);

    // The engine answers: its containers are counted and each polecat's is observed.
    let s = t.json(&["status"]);
    assert_eq!(s["engine"]["answers"], true, "{s}");
    assert_eq!(s["engine"]["containers_running"], 1, "{s}");
    assert_eq!(s["rigs"][0]["containers_running"], 1, "{s}");
    assert_eq!(t.json(&["polecat", "list"])[0]["observed"], "running");
    let list = t.ok(&["polecat", "list"]);
    assert!(
        list.starts_with("engine: ok, 1 container(s) of this town running\npatrol: last pass "),
        "{list}"
    );
    let text = t.ok(&["status"]);
    assert!(
        text.contains("engine: ok, 1 container(s) of this town running"),
        "{text}"
    );
    // Queued beads are open too, but counted in their own column, not twice.
    let row = text.lines().find(|l| l.starts_with("api ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..4],
        ["api", "1", "1", "1"],
        "open, queued, active: {text}"
    );
    assert!(row.ends_with("1 running"), "{row}");

    // The engine does not answer: said first, and the recorded states are not passed
    // off as checked.
    let (code, out, err) = dead_engine(&t, &["status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("engine: DOWN ("), "{out}");
    assert!(out.contains("not checked"), "{out}");
    assert!(out.contains("1 running, unverified: engine down"), "{out}");
    let (code, json, _) = dead_engine(&t, &["--json", "status"]);
    assert_eq!(code, Some(0));
    let s: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(s["engine"]["answers"], false, "{s}");
    assert!(
        s["engine"]["error"]
            .as_str()
            .unwrap()
            .contains("nonexistent"),
        "{s}"
    );
    assert_eq!(s["engine"]["containers_running"], serde_json::Value::Null);
    assert_eq!(s["rigs"][0]["containers_running"], serde_json::Value::Null);
    let (code, out, _) = dead_engine(&t, &["polecat", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("engine: DOWN ("), "{out}");
    assert!(
        out.contains("\npatrol: last pass ") && out.contains(", ok: nothing to do"),
        "{out}"
    );
    let (_, json, _) = dead_engine(&t, &["--json", "polecat", "list"]);
    let pl: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(pl[0]["state"], "running");
    assert_eq!(pl[0]["observed"], serde_json::Value::Null, "{pl}");

    // A patrol that cannot reach the engine is a failed pass, not the last good one.
    let (code, _, _) = dead_engine(&t, &["patrol"]);
    assert_eq!(code, Some(5));
    let p = &t.json(&["status"])["patrol"];
    assert_eq!(p["last_pass_failed"], true, "{p}");
    assert!(p["last_success"].as_i64().unwrap() <= p["last_pass"].as_i64().unwrap());
    assert!(
        p["failure"]
            .as_str()
            .unwrap()
            .contains("Docker unreachable for 1 pass"),
        "{p}"
    );
    let text = t.ok(&["status"]);
    assert!(text.contains("FAILED: Docker unreachable"), "{text}");
    assert!(text.contains("last successful pass "), "{text}");

    // A container gone behind gt's back: the list says so before patrol acts.
    let name = t.json(&["polecat", "list"])[0]["container"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(docker(&["kill", &name]).status.success());
    let text = wait_for("the killed container seen", 30, || {
        let text = t.ok(&["polecat", "list"]);
        text.contains("running (container exited)").then_some(text)
    });
    assert!(text.contains(&working), "{text}");
    let text = t.ok(&["status"]);
    assert!(
        text.contains("1 running, only 0 container(s) running"),
        "{text}"
    );
    t.ok(&["patrol"]);
    let s = t.json(&["status"]);
    assert_eq!(s["patrol"]["last_pass_failed"], false, "{s}");
    assert_eq!(s["patrol"]["found"]["deaths"], 1, "{s}");
    // The queued bead waited before the death: it takes the freed slot, the retry waits
    // its turn (oldest first).
    assert!(
        t.ok(&["status"])
            .contains(", ok: 1 died, 1 dispatched from the queue"),
        "what the last pass found"
    );
}

#[test]
fn a_hung_engine_costs_status_seconds_and_is_shown_down() {
    // An "engine" that accepts connections and never answers.
    let t = TestTown::new();
    let sock = t.dir.path().join("hung.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c); // keep it open, say nothing
        }
    });
    let host = format!("unix://{}", sock.display());
    let started = std::time::Instant::now();
    let (code, out, err) = run_env(&t, &["status"], &[("DOCKER_HOST", host.as_str())]);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("engine: DOWN ("), "{out}");
    // The probe's 3 s, not patrol.engine_timeout's 60 s (bounded loosely: a loaded CI).
    assert!(
        took < std::time::Duration::from_secs(deadline_secs(5)),
        "gt status took {took:?} on a hung engine"
    );
}

#[test]
fn times_are_relative_for_people_and_exact_in_json() {
    let t = TestTown::new();
    t.ok(&[
        "mail", "send", "mayor", "-s", "hello", "-m", "body", "--id", "m-1",
    ]);
    let db = rusqlite::Connection::open(t.root().join(".gt/town.db")).unwrap();
    let sent: i64 = db
        .query_row("SELECT sent_at FROM mail WHERE id = 'm-1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE mail SET sent_at = sent_at - 4 * 60000 WHERE id = 'm-1'",
        [],
    )
    .unwrap();
    let inbox = t.ok(&["mail", "inbox"]);
    let row = inbox.lines().find(|l| l.starts_with("m-1")).unwrap();
    assert!(row.contains("4m ago"), "{inbox}");
    assert!(
        !row.contains("2026") && !row.contains('T'),
        "no stamp: {row}"
    );
    let json = t.json(&["mail", "inbox"]);
    assert_eq!(json[0]["sent"].as_i64().unwrap(), sent - 4 * 60_000);

    // Patrol: its last successful pass, two hours back.
    if !require_docker() {
        return;
    }
    t.ok(&["patrol"]);
    age_events(&t, "patrol.succeeded", 120);
    age_events(&t, "patrol.finished", 120);
    let text = t.ok(&["status"]);
    assert!(
        text.contains("patrol: last pass 2h ago, ok: nothing to do"),
        "{text}"
    );
    let at = t.json(&["status"])["patrol"]["last_success"]
        .as_i64()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now - at - 120 * 60_000).abs() < 60_000,
        "exact in JSON: {at}"
    );
}

/// Runs `gt args` under a pseudo-terminal (util-linux `script`), with `NO_COLOR` as given.
fn on_a_terminal(t: &TestTown, args: &str, no_color: Option<&str>) -> String {
    let mut c = std::process::Command::new("script");
    c.args([
        "-qec",
        &format!("{} {args}", gt_bin().display()),
        "/dev/null",
    ])
    .env("GT_TOWN", t.root())
    .env_remove("GT_AGENT")
    .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let out = c
        .output()
        .expect("util-linux `script` runs gt on a terminal");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let t = TestTown::new();
    // Something the tables colour: an unread message, and the engine line.
    t.ok(&["mail", "send", "mayor", "-s", "hello", "-m", "body"]);
    let tty = on_a_terminal(&t, "mail inbox", None);
    assert!(
        tty.contains("\x1b[33mno\x1b[0m"),
        "unread in yellow: {tty:?}"
    );
    let tty = on_a_terminal(&t, "status", None);
    assert!(tty.contains("\x1b["), "{tty:?}");
    for args in ["mail inbox", "status"] {
        let plain = on_a_terminal(&t, args, Some("1"));
        assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
    }
    // Piped, NO_COLOR unset: no colour either.
    for args in [&["mail", "inbox"][..], &["status"]] {
        let out = t.cmd().env_remove("NO_COLOR").args(args).output().unwrap();
        assert!(out.status.success());
        assert!(!out.stdout.contains(&0x1b), "{args:?} piped");
    }
}

#[test]
fn idle_polecats_are_hidden_unless_all_and_done_notices_of_a_digest_rig_fold_into_one() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(
        &scripted_agent(""),
        &["--max-polecats", "2", "--memory", "256m"],
    );
    t.ok(&["rig", "set", "api", "--digest", "on"]);
    let a = t.bead("first");
    let b = t.bead("second");
    t.ok(&["sling", &a]);
    t.ok(&["sling", &b]);
    // Both agents said done (their requests are ingested by any read): one pass hands
    // both over, and its delivery folds both notices into one digest.
    wait_for("both agents finishing", 60, || {
        let pl = t.json(&["polecat", "list"]);
        pl.as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "finishing")
            .then_some(())
    });
    t.ok(&["patrol"]);
    t.patrol_until("both beads done", 60, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    assert!(t.mayor_mail_id("done-").is_empty(), "{:?}", t.mayor_mail());
    let digests = t.mayor_mail_id("digest-");
    assert_eq!(digests.len(), 1, "one digest: {:?}", t.mayor_mail());
    let d = &digests[0];
    assert_eq!(d["kind"], "notice");
    assert_eq!(d["from"], "patrol");
    assert!(
        d["subject"]
            .as_str()
            .unwrap()
            .contains("digest: 2 bead(s) done in api"),
        "{d}"
    );
    let body = d["body"].as_str().unwrap();
    assert!(body.contains(&format!("{a} done by")) && body.contains(&format!("{b} done by")));
    assert!(
        body.contains("commit "),
        "each notice's text is kept: {body}"
    );
    // The folded notices are gone, and asking for one says where it went.
    let folded: Vec<String> = t
        .json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "mail.folded")
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(folded.len(), 2, "{folded:?}");
    let err = t.fails(&["mail", "read", &folded[0]], 4);
    assert!(
        err.contains(&format!(
            "folded into the digest {}",
            d["id"].as_str().unwrap()
        )),
        "{err}"
    );
    // More passes do not fold anything again, nor post a second digest.
    t.ok(&["patrol"]);
    assert_eq!(t.mayor_mail_id("digest-").len(), 1);
    t.doctor_clean();

    // Both polecats are idle now: hidden from the table, listed with --all and in JSON.
    let text = t.ok(&["polecat", "list"]);
    assert!(
        text.contains("no polecat at work; 2 idle (`gt polecat list --all` shows them)"),
        "{text}"
    );
    let all = t.ok(&["polecat", "list", "--all"]);
    assert_eq!(
        all.lines().filter(|l| l.contains(" idle ")).count(),
        2,
        "{all}"
    );
    assert_eq!(t.json(&["polecat", "list"]).as_array().unwrap().len(), 2);
    // One at work again: it is shown, the idle one is counted.
    let c = t.bead("third");
    t.ok(&["rig", "set", "api", "--command", "sleep 300"]);
    t.ok(&["sling", &c]);
    let text = t.ok(&["polecat", "list"]);
    assert!(text.contains(&c), "{text}");
    assert!(
        text.contains("1 idle polecat(s) hidden; --all shows them"),
        "{text}"
    );
}

#[test]
fn a_digest_rig_never_folds_escalations_and_a_rig_without_digest_keeps_its_notices() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent(""), &["--memory", "256m"]);
    let a = t.bead("plain rig");
    t.ok(&["sling", &a]);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&a) == "done");
    assert_eq!(
        t.mayor_mail_id("done-").len(),
        1,
        "digest off: a notice of its own"
    );
    assert!(t.mayor_mail_id("digest-").is_empty());

    // Digest on: the engine down for three passes is an escalation, never folded.
    t.ok(&["rig", "set", "api", "--digest", "on"]);
    for _ in 0..3 {
        assert_eq!(dead_engine(&t, &["patrol"]).0, Some(5));
    }
    t.ok(&["patrol"]);
    let esc = t.mayor_mail_id("runtime-down-");
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0]["kind"], "escalation");
    // The notice sent before digest was on was unread: it is folded now.
    assert!(t.mayor_mail_id("done-").is_empty());
    assert_eq!(t.mayor_mail_id("digest-").len(), 1);
}

#[test]
fn mail_inbox_filters_by_kind_sender_and_unread_and_ack_all_files_them_away() {
    let t = TestTown::new();
    t.ok(&[
        "mail",
        "send",
        "mayor",
        "-s",
        "from a person",
        "-m",
        "hi",
        "--id",
        "m-1",
    ]);
    t.ok(&[
        "mail", "send", "mayor", "-s", "another", "-m", "hi", "--id", "m-2",
    ]);
    // Patrol without an engine, three passes: one escalation from patrol.
    for _ in 0..3 {
        assert_eq!(dead_engine(&t, &["patrol"]).0, Some(5));
    }
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["mail", "inbox"];
        a.extend_from_slice(args);
        t.json(&a)
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&[]).len(), 3);
    let esc = ids(&["--kind", "escalation"]);
    assert_eq!(esc.len(), 1);
    assert!(esc[0].starts_with("runtime-down-"), "{esc:?}");
    assert_eq!(ids(&["--kind", "message"]), ["m-1", "m-2"]);
    assert!(ids(&["--kind", "notice"]).is_empty());
    assert_eq!(ids(&["--from", "human"]), ["m-1", "m-2"]);
    assert_eq!(ids(&["--from", "patrol"]), esc);
    assert!(ids(&["--from", "api/nux"]).is_empty());
    t.ok(&["mail", "read", "m-1"]);
    assert_eq!(ids(&["--unread", "--kind", "message"]), ["m-2"]);
    let text = t.ok(&["mail", "inbox", "--unread"]);
    assert_eq!(text.lines().count(), 3, "the header and 2 unread: {text}");
    assert!(text.contains("escalation"), "the kind column: {text}");
    let bad = t.fails(&["mail", "inbox", "--kind", "spam"], 2);
    assert!(
        bad.contains("escalation") && bad.contains("notice"),
        "{bad}"
    );

    // ack --all --kind: only that kind, and acked mail counts as read.
    assert_eq!(t.json(&["status"])["mayor_unread_escalations"], 1);
    let acked = t.json(&["mail", "ack", "--all", "--kind", "escalation"]);
    assert_eq!(acked["acked"].as_array().unwrap().len(), 1, "{acked}");
    assert_eq!(t.json(&["status"])["mayor_unread"], 1, "m-2 only");
    assert_eq!(t.json(&["status"])["mayor_unread_escalations"], 0);
    let out = t.ok(&["mail", "ack", "--all"]);
    assert_eq!(out.trim(), "acked 2 message(s)");
    assert_eq!(
        t.ok(&["mail", "ack", "--all"]).trim(),
        "nothing to acknowledge"
    );
    assert!(
        t.json(&["mail", "inbox"])
            .as_array()
            .unwrap()
            .iter()
            .all(|m| { m["acked"].is_i64() && m["read"].is_i64() })
    );
    assert!(t.ok(&["mail", "inbox"]).contains("acked"));
    // Usage: a filter without --all, or neither an id nor --all.
    t.fails(&["mail", "ack", "--kind", "notice"], 2);
    t.fails(&["mail", "ack"], 2);
    t.fails(&["mail", "ack", "m-1", "--all"], 2);
    t.fails(&["mail", "ack", "m-nope"], 4);

    // read and ack explain themselves differently.
    let read = t.ok(&["mail", "read", "--help"]);
    let ack = t.ok(&["mail", "ack", "--help"]);
    assert_ne!(read, ack);
    assert!(
        read.contains("mark it read") && read.contains("does not acknowledge"),
        "{read}"
    );
    assert!(ack.contains("handled") && ack.contains("--all"), "{ack}");
}

/// A fake `crontab` keeping the table in `file`: `-l` prints it (or says there is none),
/// `-` replaces it from stdin.
fn fake_crontab(dir: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("crontab");
    let file = dir.join("crontab.txt");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nf='{}'\ncase \"$1\" in\n  -l) [ -f \"$f\" ] || {{ echo \"no crontab for $(id -un)\" >&2; exit 1; }}; cat \"$f\" ;;\n  -) cat > \"$f\" ;;\n  *) exit 2 ;;\nesac\n",
            file.display()
        ),
    )
    .unwrap();
    make_executable(&script);
    (script, file)
}

/// A fake `systemctl` that logs its arguments, one call a line.
fn fake_systemctl(dir: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("systemctl");
    let log = dir.join("systemctl.log");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    make_executable(&script);
    (script, log)
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn patrol_install_writes_one_crontab_line_idempotently_and_uninstall_removes_only_it() {
    let t = TestTown::new();
    let fakes = t.dir.path().join("fakes");
    std::fs::create_dir_all(&fakes).unwrap();
    let (crontab, table) = fake_crontab(&fakes);
    // Systemd units (uninstall looks for them too) in the test's own config dir.
    let config = t.dir.path().join("config");
    let env = [
        ("GT_CRONTAB", crontab.to_str().unwrap()),
        ("XDG_CONFIG_HOME", config.to_str().unwrap()),
    ];
    let theirs = "* * * * * cd '/srv/other' && '/usr/bin/gt' --town '/srv/other' -q patrol >> '/srv/other/.gt/patrol.log' 2>&1 # gt patrol for /srv/other";
    let before = format!("MAILTO=me@example.com\n0 3 * * * backup.sh\n{theirs}\n");
    std::fs::write(&table, &before).unwrap();

    // No crontab command: not found (4), with what to do.
    let (code, _, err) = run_env(
        &t,
        &["patrol", "install"],
        &[("GT_CRONTAB", "/nonexistent/crontab")],
    );
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("apt-get install cron") && err.contains("--systemd"),
        "{err}"
    );

    // --print shows the line and writes nothing.
    let (code, printed, err) = run_env(&t, &["patrol", "install", "--print"], &env);
    assert_eq!(code, Some(0), "{err}");
    let root = t.root().display().to_string();
    let bin = gt_bin().display().to_string();
    assert!(printed.starts_with("* * * * * "), "{printed}");
    assert!(
        printed.contains(&format!("'{bin}' --town '{root}' -q patrol")),
        "{printed}"
    );
    // The engine this shell uses goes with it: cron does not pass the environment on.
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        assert!(
            printed.contains(&format!("DOCKER_HOST='{host}' ")),
            "{printed}"
        );
    }
    assert!(
        printed
            .trim_end()
            .ends_with(&format!("# gt patrol for {root}"))
    );
    assert_eq!(std::fs::read_to_string(&table).unwrap(), before);

    let (code, out, err) = run_env(&t, &["patrol", "install"], &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("installed a crontab line"), "{out}");
    let after = std::fs::read_to_string(&table).unwrap();
    assert_eq!(
        after,
        format!("{before}{}", printed.trim_end().to_owned() + "\n")
    );

    // Again: nothing changes.
    let (code, out, _) = run_env(&t, &["patrol", "install", "--cron"], &env);
    assert_eq!(code, Some(0));
    assert!(out.contains("already installed"), "{out}");
    assert_eq!(std::fs::read_to_string(&table).unwrap(), after);
    let (_, json, _) = run_env(&t, &["--json", "patrol", "install"], &env);
    let j: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(j["changed"], false, "{j}");

    // The line works: run as cron would, it runs a pass that status reports.
    if require_docker() {
        let line = after.lines().last().unwrap();
        let cmd = line.strip_prefix("* * * * * ").unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", cmd])
            .env_remove("GT_TOWN")
            .env_remove("DOCKER_HOST")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let s = t.json(&["status"]);
        assert!(s["patrol"]["last_success"].is_i64(), "{s}");
        let log = std::fs::read_to_string(t.root().join(".gt/patrol.log")).unwrap_or_default();
        assert!(!log.contains("error"), "{log}");
    }

    let (code, out, _) = run_env(&t, &["patrol", "uninstall"], &env);
    assert_eq!(code, Some(0));
    assert!(out.contains("removed the crontab line"), "{out}");
    assert_eq!(std::fs::read_to_string(&table).unwrap(), before);
    let (code, out, _) = run_env(&t, &["patrol", "uninstall", "--cron"], &env);
    assert_eq!(code, Some(0));
    assert!(out.contains("nothing to remove"), "{out}");
    assert_eq!(std::fs::read_to_string(&table).unwrap(), before);

    // This town's line from another gt binary (an older install) is replaced, not doubled.
    let old_line = format!("* * * * * '/old/gt' --town '{root}' -q patrol # gt patrol for {root}");
    std::fs::write(&table, format!("{before}{old_line}\n")).unwrap();
    let (code, out, _) = run_env(&t, &["patrol", "install"], &env);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("installed"), "{out}");
    assert_eq!(std::fs::read_to_string(&table).unwrap(), after);
}

#[test]
fn patrol_install_systemd_writes_a_unit_and_timer_once_and_uninstall_removes_them() {
    let t = TestTown::new();
    let fakes = t.dir.path().join("fakes");
    std::fs::create_dir_all(&fakes).unwrap();
    let (systemctl, log) = fake_systemctl(&fakes);
    let config = t.dir.path().join("config");
    let env = [
        ("GT_SYSTEMCTL", systemctl.to_str().unwrap()),
        ("XDG_CONFIG_HOME", config.to_str().unwrap()),
    ];
    let (code, out, err) = run_env(&t, &["patrol", "install", "--systemd"], &env);
    assert_eq!(code, Some(0), "{err}");
    let units = config.join("systemd/user");
    let service = units.join(format!("gt-patrol-{}.service", t.id));
    let timer = units.join(format!("gt-patrol-{}.timer", t.id));
    assert!(out.contains(&service.display().to_string()), "{out}");
    let service_text = std::fs::read_to_string(&service).unwrap();
    let root = t.root().display().to_string();
    assert!(
        service_text.contains(&format!(
            "ExecStart=\"{}\" --town \"{root}\" -q patrol",
            gt_bin().display()
        )),
        "{service_text}"
    );
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        assert!(
            service_text.contains(&format!("Environment=\"DOCKER_HOST={host}\"\n")),
            "{service_text}"
        );
    }
    let timer_text = std::fs::read_to_string(&timer).unwrap();
    assert!(timer_text.contains("OnUnitActiveSec=30s"), "{timer_text}");
    assert!(timer_text.contains("WantedBy=timers.target"));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        format!(
            "--user daemon-reload\n--user enable --now gt-patrol-{}.timer\n",
            t.id
        )
    );

    // Again: the files stay as they are (no reload); enabling again is harmless.
    let (code, out, _) = run_env(&t, &["patrol", "install", "--systemd"], &env);
    assert_eq!(code, Some(0));
    assert!(out.contains("already installed"), "{out}");
    assert_eq!(std::fs::read_to_string(&service).unwrap(), service_text);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(calls.matches("daemon-reload").count(), 1, "{calls}");

    // systemctl failing: the units are written, the command says what is left to do.
    let (code, _, err) = run_env(
        &t,
        &["patrol", "install", "--systemd"],
        &[("GT_SYSTEMCTL", "false"), env[1]],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("not finished") && err.contains("enable --now"),
        "{err}"
    );

    let (code, out, _) = run_env(&t, &["patrol", "uninstall", "--systemd"], &env);
    assert_eq!(code, Some(0));
    assert!(out.contains("removed"), "{out}");
    assert!(!service.exists() && !timer.exists());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains(&format!("--user disable --now gt-patrol-{}.timer", t.id))
    );
}

#[test]
fn doctor_warns_when_nothing_runs_patrol() {
    let t = TestTown::new();
    t.rig("true", &[]);
    let warned = |t: &TestTown| t.json(&["doctor"])["warnings"].to_string();
    assert!(warned(&t).contains("nothing runs patrol: no pass has succeeded yet"));
    // A pass that fails is no pass.
    assert_eq!(dead_engine(&t, &["patrol"]).0, Some(5));
    assert!(warned(&t).contains("nothing runs patrol"));
    if !require_docker() {
        return;
    }
    t.ok(&["patrol"]);
    assert!(!warned(&t).contains("patrol"), "{}", warned(&t));
    // Ten minutes without one (three intervals of 30s, and more than five minutes).
    age_events(&t, "patrol.succeeded", 10);
    let w = warned(&t);
    assert!(
        w.contains("the last successful pass was 10m ago") && w.contains("gt patrol install"),
        "{w}"
    );
}
