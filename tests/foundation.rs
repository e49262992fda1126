//! Issue 2: town, state, rigs, beads, status, log, bad input and concurrency,
//! all through the real binary on a real SQLite file.

mod support;

use std::collections::HashSet;
use support::*;

#[test]
fn init_writes_config_and_database_and_refuses_a_second_init() {
    let t = TestTown::new();
    let root = t.root();
    assert!(root.join("gt.toml").is_file());
    assert!(root.join(".gt/town.db").is_file());
    let toml = std::fs::read_to_string(root.join("gt.toml")).unwrap();
    for key in [
        "[defaults]",
        "max_attempts",
        "retry_backoff",
        "[patrol]",
        "breaker_window",
    ] {
        assert!(toml.contains(key), "gt.toml lacks {key}");
    }
    let err = t.fails(&["init", root.to_str().unwrap()], 3);
    assert!(err.contains("already a gt town"), "{err}");
    assert_eq!(t.id.len(), 6);
}

#[test]
fn town_is_found_from_a_subdirectory_and_not_outside_any_town() {
    let t = TestTown::new();
    let sub = t.root().join("rigs");
    std::fs::create_dir_all(&sub).unwrap();
    let out = assert_cmd::Command::new(gt_bin())
        .current_dir(&sub)
        .env_remove("GT_TOWN")
        .args(["--json", "status"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["town_id"], t.id.as_str());

    let elsewhere = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::new(gt_bin())
        .current_dir(elsewhere.path())
        .env_remove("GT_TOWN")
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a gt town"));
}

#[test]
fn rig_set_changes_settings_with_a_version_check_and_refuses_bad_values() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--memory",
        "256m",
    ]);
    let c = t.json(&["rig", "set", "api", "--memory", "1g", "--max-polecats", "2"]);
    assert_eq!(c["rig"]["memory"], 1i64 << 30, "{c}");
    assert_eq!(c["rig"]["max_polecats"], 2);
    assert_eq!(c["rig"]["version"], 2);
    assert_eq!(c["changes"].as_array().unwrap().len(), 2, "{c}");
    assert_eq!(c["changes"][0], "memory 256m → 1g", "{c}");
    // A writer that read version 1 loses: exit 3, nothing changed.
    let err = t.fails(
        &["rig", "set", "api", "--cpus", "1", "--if-version", "1"],
        3,
    );
    assert!(
        err.contains("version 1") && err.contains("version 2"),
        "{err}"
    );
    // Bad values name the flag and change nothing; so does an empty request.
    for bad in [
        vec!["--memory", "lots"],
        vec!["--cpus", "0"],
        vec!["--pids", "3"],
        vec!["--network", "no/such"],
        vec!["--max-polecats", "0"],
        vec!["--command", " "],
        vec!["--remote", ""],
        vec![],
    ] {
        let mut args = vec!["rig", "set", "api"];
        args.extend(bad.iter());
        t.fails(&args, 2);
    }
    t.fails(&["rig", "set", "nope", "--cpus", "1"], 4);
    let rig = t.json(&["rig", "show", "api"]);
    assert_eq!(rig["version"], 2, "{rig}");
    assert_eq!(rig["cpus"], 2.0, "{rig}");
    // The same value again changes nothing and says so.
    let same = t.ok(&["rig", "set", "api", "--memory", "1g"]);
    assert!(same.contains("already has these settings"), "{same}");
    let log = t.json(&["log", "--subject", "api"]);
    let updates = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "rig.updated")
        .count();
    assert_eq!(updates, 1, "{log}");
}

#[test]
fn rig_add_records_settings_and_lists_them() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    let rig = t.json(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        "img:1",
        "--memory",
        "2g",
        "--cpus",
        "1.5",
        "--max-polecats",
        "3",
    ]);
    assert_eq!(rig["name"], "api");
    assert_eq!(rig["default_branch"], "main");
    assert_eq!(rig["image"], "img:1");
    assert_eq!(rig["memory"], 2i64 << 30);
    assert_eq!(rig["max_polecats"], 3);
    assert!(
        rig["remote"].is_null(),
        "a local path has no remote by default"
    );
    assert!(t.root().join("rigs/api/repo/.git").is_dir());
    let list = t.json(&["rig", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    for field in ["name", "source", "default_branch", "image", "version"] {
        assert!(list[0].get(field).is_some(), "rig json lacks {field}");
    }
    let shown = t.json(&["rig", "show", "api"]);
    assert_eq!(shown["source"], src.to_str().unwrap());
}

#[test]
fn bad_names_are_rejected_before_any_side_effect() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    let events = t.event_count();
    let long = "a".repeat(41);
    for bad in [
        "a/b",
        "..",
        "has space",
        "Upper",
        long.as_str(),
        "_under",
        "dot.name",
    ] {
        let err = t.fails(&["rig", "add", bad, src.to_str().unwrap()], 2);
        assert!(err.contains("invalid rig name"), "{bad}: {err}");
    }
    assert_eq!(t.event_count(), events);
    let rigs_dir = t.root().join("rigs");
    assert!(!rigs_dir.exists() || std::fs::read_dir(&rigs_dir).unwrap().next().is_none());
}

#[test]
fn rig_add_of_a_non_repository_or_unreachable_url_fails_cleanly() {
    let t = TestTown::new();
    let plain = t.dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let err = t.fails(&["rig", "add", "api", plain.to_str().unwrap()], 2);
    assert!(err.contains("is not a git repository"), "{err}");
    let src = t.source_repo("src");
    let err = t.fails(
        &[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--network",
            "a b",
        ],
        2,
    );
    assert!(err.contains("--network"), "{err}");
    let err = t.fails(
        &["rig", "add", "api", src.to_str().unwrap(), "--pids", "3"],
        2,
    );
    assert!(err.contains("--pids"), "{err}");
    let err = t.fails(
        &[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--memory",
            "lots",
        ],
        2,
    );
    assert!(err.contains("--memory"), "{err}");
    let err = t.fails(
        &[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--max-polecats",
            "0",
        ],
        2,
    );
    assert!(err.contains("--max-polecats"), "{err}");
    // A loopback port nobody listens on: unreachable, and fast.
    let err = t.fails(&["rig", "add", "api", "http://127.0.0.1:9/nothing.git"], 1);
    assert!(err.contains("cannot clone"), "{err}");
    assert!(t.json(&["rig", "list"]).as_array().unwrap().is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(t.root().join("rigs")).unwrap().collect();
    assert!(leftovers.is_empty(), "rig add left {leftovers:?}");
}

#[test]
fn a_second_rig_with_the_same_name_is_a_conflict() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let err = t.fails(&["rig", "add", "api", src.to_str().unwrap()], 3);
    assert!(err.contains("rig api already exists"), "{err}");
}

#[test]
fn beads_are_created_listed_shown_and_closed() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let id = t
        .ok(&[
            "bead",
            "create",
            "--rig",
            "api",
            "Fix login",
            "-m",
            "The form 500s",
        ])
        .trim()
        .to_string();
    assert!(id.starts_with("api-"), "{id}");
    let b = t.json(&["bead", "show", &id]);
    for field in ["id", "rig", "title", "status", "version"] {
        assert!(b.get(field).is_some(), "bead json lacks {field}");
    }
    assert_eq!(b["status"], "open");
    assert_eq!(b["body"], "The form 500s");
    let open = t.json(&["bead", "list", "--rig", "api", "--status", "open"]);
    assert_eq!(open.as_array().unwrap().len(), 1);
    let closed = t.json(&["bead", "close", &id]);
    assert_eq!(closed["status"], "cancelled");
    assert_eq!(closed["version"], 2);
    let err = t.fails(&["bead", "close", &id], 3);
    assert!(err.contains("already cancelled"), "{err}");
    let status = t.json(&["status"]);
    assert_eq!(status["rigs"][0]["beads"]["cancelled"], 1);
    let log = t.json(&["log"]);
    let kinds: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"bead.created") && kinds.contains(&"bead.closed"),
        "{kinds:?}"
    );
}

#[test]
fn unknown_beads_rigs_and_statuses_are_reported() {
    let t = TestTown::new();
    let err = t.fails(&["bead", "show", "nope-123"], 4);
    assert!(err.contains("bead nope-123 not found"), "{err}");
    let err = t.fails(&["bead", "create", "--rig", "ghost", "x"], 4);
    assert!(err.contains("rig ghost not found"), "{err}");
    t.fails(&["rig", "show", "ghost"], 4);
    t.fails(&["bead", "list", "--rig", "ghost"], 4);
    let err = t.fails(&["bead", "list", "--status", "sleeping"], 2);
    assert!(err.contains("unknown status"), "{err}");
    t.fails(&["log", "--since", "whenever"], 2);
}

#[test]
fn a_corrupt_database_is_refused_and_left_alone() {
    let t = TestTown::new();
    let db = t.root().join(".gt/town.db");
    let _ = std::fs::remove_file(t.root().join(".gt/town.db-wal"));
    let _ = std::fs::remove_file(t.root().join(".gt/town.db-shm"));
    let garbage = b"this is not a database, it is a grocery list: eggs, milk".repeat(100);
    std::fs::write(&db, &garbage).unwrap();
    let err = t.fails(&["status"], 1);
    assert!(err.contains("not a SQLite database"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
}

#[test]
fn a_database_from_a_newer_gt_is_refused_byte_for_byte_unchanged() {
    let t = TestTown::new();
    let db = t.root().join(".gt/town.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "user_version", 999).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let err = t.fails(&["bead", "list"], 1);
    assert!(err.contains("newer gt"), "{err}");
    assert!(err.contains("999"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_database_from_an_older_gt_is_migrated_in_place_keeping_its_data() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let id = t.bead("kept across the upgrade");
    let db = t.root().join(".gt/town.db");
    {
        // What the first released schema (version 1) looked like.
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "ALTER TABLE merge_requests DROP COLUMN pruned_at;
             DROP INDEX requests_dispatch;
             ALTER TABLE rigs DROP COLUMN agent;
             ALTER TABLE rigs DROP COLUMN env;
             ALTER TABLE rigs DROP COLUMN secrets;
             DROP TABLE usage;
             DROP TABLE drains;
             DROP INDEX merge_requests_rig_state;
             ALTER TABLE rigs DROP COLUMN merge;
             ALTER TABLE rigs DROP COLUMN test_command;
             ALTER TABLE rigs DROP COLUMN merge_style;
             ALTER TABLE rigs DROP COLUMN gate_secrets;
             ALTER TABLE rigs DROP COLUMN digest;
             ALTER TABLE merge_requests DROP COLUMN state;
             ALTER TABLE merge_requests DROP COLUMN queued_at;
             ALTER TABLE merge_requests DROP COLUMN target;
             ALTER TABLE merge_requests DROP COLUMN step;
             ALTER TABLE merge_requests DROP COLUMN base;
             ALTER TABLE merge_requests DROP COLUMN candidate;
             ALTER TABLE merge_requests DROP COLUMN gate_runs;
             ALTER TABLE merge_requests DROP COLUMN reason;
             ALTER TABLE merge_requests DROP COLUMN merged_commit;
             ALTER TABLE merge_requests DROP COLUMN merged_at;
             ALTER TABLE merge_requests DROP COLUMN updated_at;
             ALTER TABLE merge_requests DROP COLUMN version;
             ALTER TABLE rigs DROP COLUMN placement;
             ALTER TABLE mail DROP COLUMN generation;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    assert_eq!(
        t.json(&["bead", "show", &id])["title"],
        "kept across the upgrade"
    );
    let c = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, gt::state::schema::CURRENT);
    c.prepare("SELECT placement FROM rigs").unwrap();
    c.prepare("SELECT generation FROM mail").unwrap();
    c.prepare("SELECT input_tokens, cost_usd, flagged FROM usage")
        .unwrap();
    c.prepare("SELECT pruned_at FROM merge_requests").unwrap();
    c.prepare("SELECT agent, env, secrets FROM rigs").unwrap();
    assert_eq!(t.json(&["rig", "show", "api"])["agent"], "custom");
    // A rig from before the merge queue keeps today's behaviour: record only.
    assert_eq!(t.json(&["rig", "show", "api"])["merge"], "off");
    c.prepare("SELECT state, queued_at FROM merge_requests")
        .unwrap();
    c.prepare("SELECT scope, mode FROM drains").unwrap();
    let migrated = t
        .json(&["log", "--subject", "town"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "schema.migrated" && e["data"]["from"] == 1)
        .count();
    assert_eq!(migrated, 1);
}

#[test]
fn a_read_only_town_can_be_read_and_refuses_writes_changing_nothing() {
    // Root ignores permissions, so run gt as nobody (setpriv from util-linux).
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    t.bead("before");
    let before = t.json(&["bead", "list"]);
    // An agent request waiting in an outbox, which a read-only reader cannot apply.
    let outbox = t.root().join("agents/api/nux/outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::write(outbox.join("r1.json"), "{}").unwrap();
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rX,a-w", t.root().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    std::process::Command::new("chmod")
        .args(["a+rx", t.dir.path().to_str().unwrap()])
        .status()
        .unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(gt_bin())
            .args(args)
            .env("GT_TOWN", t.root())
            .output()
            .unwrap()
    };
    let out = as_nobody(&["bead", "create", "--rig", "api", "x"]);
    // Reading still works, and says what it could not apply.
    let read = as_nobody(&["--json", "bead", "list"]);
    std::process::Command::new("chmod")
        .args(["-R", "u+w", t.root().to_str().unwrap()])
        .status()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("town.db"), "{err}");
    assert!(
        err.contains("writable") || err.contains("read-only") || err.contains("readonly"),
        "{err}"
    );
    let read_err = String::from_utf8_lossy(&read.stderr);
    assert!(read.status.success(), "{read_err}");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&read.stdout).unwrap(),
        before
    );
    assert!(
        read_err.contains("1 agent request(s) not applied"),
        "{read_err}"
    );
    assert_eq!(t.json(&["bead", "list"]), before);
}

#[test]
fn init_into_a_read_only_directory_fails_and_leaves_nothing() {
    let base = tempfile::tempdir().unwrap();
    let ro = base.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::process::Command::new("chmod")
        .args(["0555", ro.to_str().unwrap()])
        .status()
        .unwrap();
    std::process::Command::new("chmod")
        .args(["a+rx", base.path().to_str().unwrap()])
        .status()
        .unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(gt_bin())
        .arg("init")
        .arg(&ro)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Permission denied") && err.contains("hint:"),
        "{err}"
    );
    assert!(std::fs::read_dir(&ro).unwrap().next().is_none());
}

#[test]
fn eight_processes_create_four_hundred_unique_beads() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    // Each process is a shell loop of 50 real `gt bead create` invocations.
    let script = format!(
        "for i in $(seq 50); do {} bead create --rig api \"task $i\" || exit 1; done",
        gt_bin().display()
    );
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new("sh")
                .args(["-c", &script])
                .env("GT_TOWN", t.root())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a writer failed: {err}");
        assert!(!err.contains("locked"), "{err}");
        ids.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from),
        );
    }
    assert_eq!(ids.len(), 400);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        400,
        "duplicate ids printed"
    );
    let listed = t.json(&["bead", "list", "--rig", "api"]);
    assert_eq!(listed.as_array().unwrap().len(), 400);
}

#[test]
fn two_writers_from_the_same_version_one_wins_one_gets_a_conflict() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let id = t
        .ok(&["bead", "create", "--rig", "api", "race me"])
        .trim()
        .to_string();
    let v = t.json(&["bead", "show", &id])["version"].as_i64().unwrap();
    let v = v.to_string();
    let children: Vec<_> = ["first", "second"]
        .iter()
        .map(|title| {
            t.spawn(
                &["bead", "edit", &id, "--title", title, "--if-version", &v],
                &[],
            )
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let codes: Vec<_> = outs.iter().map(|o| o.status.code()).collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Some(0)).count(),
        1,
        "{codes:?}"
    );
    let loser = outs
        .iter()
        .find(|o| o.status.code() == Some(3))
        .expect("one exit 3");
    let err = String::from_utf8_lossy(&loser.stderr);
    assert!(err.contains(&format!("bead {id}")), "{err}");
    assert!(
        err.contains("version 1") && err.contains("version 2"),
        "{err}"
    );
    assert_eq!(t.json(&["bead", "show", &id])["version"], 2);
}

#[test]
fn rig_remove_moves_files_aside_and_forgets_the_rig() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    t.ok(&["bead", "create", "--rig", "api", "one"]);
    let removed = t.json(&["rig", "remove", "api"]);
    assert_eq!(removed["beads"], 1);
    let kept = removed["moved_to"].as_str().unwrap();
    assert!(std::path::Path::new(kept).join("repo/.git").is_dir());
    t.fails(&["rig", "show", "api"], 4);
    // The name is free again.
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("GT_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (path, content) in gt::cli::docs::generated_files().unwrap() {
        if path.extension().is_some_and(|e| e == "1") {
            let text = String::from_utf8_lossy(&content);
            assert!(
                text.contains(".SH EXAMPLES"),
                "{} has no EXAMPLES",
                path.display()
            );
        }
        let full = root.join(&path);
        if update {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, &content).unwrap();
        } else if std::fs::read(&full).ok().as_deref() != Some(content.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated docs {stale:?}: run `GT_UPDATE_DOCS=1 cargo test --test foundation completions`"
    );
}

#[test]
fn log_follow_prints_new_events_as_they_happen() {
    use std::io::BufRead;
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let old = t.bead("before the follow");
    let mut child = t.spawn(&["--json", "log", "--follow", "--since", "1s"], &[]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let new = t.bead("after the follow");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(deadline_secs(10));
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &serde_json::Value| e["subject"] == new.as_str())
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(serde_json::from_str(&line).expect("one JSON object a line")),
            Err(_) => panic!("no event for {new} within the deadline: {seen:?}"),
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    let created: Vec<_> = seen
        .iter()
        .filter(|e| e["kind"] == "bead.created")
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created.iter().filter(|s| **s == new).count(), 1, "{seen:?}");
    assert!(
        created.len() <= 2 && created.iter().all(|s| *s == new || *s == old),
        "{seen:?}"
    );
}

#[test]
fn every_command_and_argument_says_what_it_is() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let here = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                missing.push(format!("{here}: no description"));
            }
            for arg in sub.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_global_set() && arg.get_help().is_none() {
                    missing.push(format!("{here} {}: no help", arg.get_id()));
                }
            }
            walk(sub, &here, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&gt::cli::Cli::command(), "gt", &mut missing);
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn help_lists_exit_codes_and_every_command() {
    let out = assert_cmd::Command::new(gt_bin())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "init",
        "rig",
        "bead",
        "status",
        "log",
        "completions",
        "Exit codes",
        "conflict",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let out = assert_cmd::Command::new(gt_bin())
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_full_disk_gives_a_clear_error_and_loses_nothing() {
    let base = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&base.path().join("disk"), "2m") else {
        eprintln!("skipping: cannot mount a tmpfs (not root)");
        return;
    };
    let town = disk.0.join("town");
    let gt = |args: &[&str]| {
        assert_cmd::Command::new(gt_bin())
            .env("GT_TOWN", &town)
            .env("NO_COLOR", "1")
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        assert_cmd::Command::new(gt_bin())
            .arg("init")
            .arg(&town)
            .output()
            .unwrap()
            .status
            .success()
    );
    let src = base.path().join("src");
    make_repo(&src);
    assert!(
        gt(&["rig", "add", "api", src.to_str().unwrap()])
            .status
            .success()
    );
    for i in 0..5 {
        assert!(
            gt(&["bead", "create", "--rig", "api", &format!("before {i}")])
                .status
                .success()
        );
    }
    // Fill the disk to the last byte.
    let mut filler = std::fs::File::create(disk.0.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    use std::io::Write;
    while filler.write_all(&chunk).is_ok() {}
    let _ = filler.write_all(&[0u8; 1]);
    drop(filler);
    let mut failed = None;
    for i in 0..50 {
        let out = gt(&[
            "bead",
            "create",
            "--rig",
            "api",
            &format!("during {i} {}", "x".repeat(2000)),
        ]);
        if !out.status.success() {
            failed = Some(out);
            break;
        }
    }
    let out = failed.expect("some write must fail on a full disk");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("disk is full") || err.contains("No space left"),
        "{err}"
    );
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    // Nothing committed was lost, and the town works again.
    let out = gt(&["--json", "bead", "list"]);
    assert!(out.status.success(), "{out:?}");
    let beads: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let titles: Vec<&str> = beads
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["title"].as_str().unwrap())
        .collect();
    for i in 0..5 {
        assert!(
            titles.contains(&format!("before {i}").as_str()),
            "{titles:?}"
        );
    }
    assert!(
        gt(&["bead", "create", "--rig", "api", "after"])
            .status
            .success()
    );
    drop(disk);
}

#[test]
fn a_bad_gt_toml_is_refused_naming_the_key() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("town");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gt.toml"), "[defaults]\nmemory = \"lots\"\n").unwrap();
    let out = assert_cmd::Command::new(gt_bin())
        .arg("init")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("defaults.memory"));
    assert!(!dir.join(".gt").exists(), "init left a half-made town");
    // A town whose gt.toml is broken later says which key, and changes nothing.
    let t = TestTown::new();
    std::fs::write(
        t.root().join("gt.toml"),
        "[patrol]\nbreaker_window = \"forever\"\n",
    )
    .unwrap();
    let err = t.fails(&["status"], 2);
    assert!(err.contains("patrol.breaker_window"), "{err}");
    std::fs::write(t.root().join("gt.toml"), "[defaults]\nmax_polecats = 0\n").unwrap();
    let err = t.fails(&["status"], 2);
    assert!(err.contains("defaults.max_polecats"), "{err}");
}

#[test]
fn log_since_filters_by_time() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let all = t.json(&["log"]).as_array().unwrap().len();
    assert!(all >= 3);
    assert_eq!(
        t.json(&["log", "--since", "1h"]).as_array().unwrap().len(),
        all
    );
    assert_eq!(
        t.json(&["log", "--since", "2100-01-01"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(t.json(&["log", "-n", "1"]).as_array().unwrap().len(), 1);
    assert_eq!(t.json(&["log", "-n", "1"])[0]["kind"], "rig.added");
    let id = t
        .ok(&["bead", "create", "--rig", "api", "story"])
        .trim()
        .to_string();
    t.ok(&["bead", "edit", &id, "--title", "a better story"]);
    let story = t.json(&["log", "--subject", &id]);
    let kinds: Vec<&str> = story
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bead.created", "bead.edited"]);
}

#[test]
fn doctor_names_each_breach() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let a = t
        .ok(&["bead", "create", "--rig", "api", "orphaned"])
        .trim()
        .to_string();
    let b = t
        .ok(&["bead", "create", "--rig", "api", "done without a record"])
        .trim()
        .to_string();
    t.ok(&["doctor"]);
    {
        let c = rusqlite::Connection::open(t.root().join(".gt/town.db")).unwrap();
        c.execute(
            "UPDATE beads SET status = 'in_progress' WHERE id = ?1",
            [&a],
        )
        .unwrap();
        c.execute("UPDATE beads SET status = 'done' WHERE id = ?1", [&b])
            .unwrap();
    }
    let out = t.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("bead {a} is in_progress with no agent")),
        "{report}"
    );
    assert!(
        report.contains(&format!("bead {b} is done without a merge request")),
        "{report}"
    );
    let j: serde_json::Value =
        serde_json::from_slice(&t.run(&["--json", "doctor"]).stdout).unwrap();
    assert_eq!(j["ok"], false);
}
