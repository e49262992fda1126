//! Faults from the world, on the real binary: a write lock held by another process, a
//! database gt did not make, and values that configure a mechanism given out of range.
//! Only the sling in a town path with `:` and `,` needs Docker.

mod support;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// A town with rig `api` (from a local repository: no Docker) and one bead.
fn town_with_a_bead() -> (TestTown, String) {
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap()]);
    let bead = t.bead("before");
    (t, bead)
}

/// An agent request waiting in an outbox (malformed: applying it would record a
/// rejection event and move the file, so either effect shows a write happened).
fn pending_request(t: &TestTown) -> std::path::PathBuf {
    let outbox = t.root().join("agents/api/nux/outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let f = outbox.join("r1.json");
    std::fs::write(&f, "{}").unwrap();
    f
}

fn db_path(t: &TestTown) -> std::path::PathBuf {
    t.root().join(".gt/town.db")
}

#[test]
fn read_commands_answer_at_once_under_a_held_write_lock_warn_and_change_nothing() {
    let (t, bead) = town_with_a_bead();
    let events = t.event_count();
    let list = t.json(&["bead", "list"]);
    let request = pending_request(&t);

    // Another process holds a write transaction for as long as the test runs.
    let holder = rusqlite::Connection::open(db_path(&t)).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    for args in [
        vec!["status"],
        vec!["bead", "list"],
        vec!["--json", "bead", "list"],
        vec!["bead", "show", bead.as_str()],
        vec!["mail", "inbox"],
        vec!["convoy", "status"],
        vec!["polecat", "list"],
    ] {
        let started = Instant::now();
        let out = t.run(&args);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            took < Duration::from_millis(1500),
            "gt {args:?} took {took:?} under a held write lock"
        );
        assert_eq!(out.status.code(), Some(0), "gt {args:?}: {err}");
        assert!(
            err.contains("warning: 1 agent request(s) not applied") && err.contains("write lock"),
            "gt {args:?}: {err}"
        );
        if args == ["--json", "bead", "list"] {
            let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(shown, list, "the state it could read");
        }
    }
    // Doctor reads too (its verdict on this town is not the point; its wait is).
    let started = Instant::now();
    let out = t.run(&["doctor"]);
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not applied"));

    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert!(
        request.exists(),
        "the pending request was left where it was"
    );
    assert_eq!(t.event_count(), events, "nothing was written");
    // With the lock gone, the next read applies (here: rejects) the request.
    let out = t.run(&["status"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not applied"));
    assert!(!request.exists());
}

#[test]
fn a_write_waits_for_a_held_lock_rather_than_failing() {
    let (t, _) = town_with_a_bead();
    let holder = rusqlite::Connection::open(db_path(&t)).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let writer = t.spawn(&["bead", "create", "--rig", "api", "after"], &[]);
    std::thread::sleep(Duration::from_millis(1200));
    holder.execute_batch("COMMIT").unwrap();
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.json(&["bead", "list"]).as_array().unwrap().len(), 2);
}

/// Every file in `.gt/`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn empty_and_foreign_databases_are_refused_and_left_byte_for_byte_untouched() {
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 4] = [
        ("zero bytes", |p| std::fs::write(p, b"").unwrap(), "empty"),
        (
            "sqlite without tables",
            |p| {
                let c = rusqlite::Connection::open(p).unwrap();
                c.execute_batch("CREATE TABLE t (x); DROP TABLE t;")
                    .unwrap();
            },
            "empty",
        ),
        (
            "another application's tables, no ids",
            |p| {
                let c = rusqlite::Connection::open(p).unwrap();
                c.execute_batch(
                    "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT);
                     INSERT INTO moz_places (url) VALUES ('https://example.org');",
                )
                .unwrap();
            },
            "moz_places",
        ),
        (
            "another application's ids",
            |p| {
                let c = rusqlite::Connection::open(p).unwrap();
                c.execute_batch(
                    "PRAGMA application_id = 1234; PRAGMA user_version = 7;
                     CREATE TABLE notes (body TEXT);",
                )
                .unwrap();
            },
            "0x4d2",
        ),
    ];
    for (what, make, says) in cases {
        let t = TestTown::new();
        let gt_dir = t.root().join(".gt");
        for f in std::fs::read_dir(&gt_dir).unwrap().flatten() {
            std::fs::remove_file(f.path()).unwrap();
        }
        make(&gt_dir.join("town.db"));
        let before = snapshot(&gt_dir);
        for args in [
            vec!["status"],
            vec!["bead", "list"],
            vec!["bead", "create", "--rig", "api", "x"],
            vec!["doctor"],
        ] {
            let err = t.fails(&args, 1);
            assert!(
                err.contains("town.db") && err.contains(says) && err.contains("refusing"),
                "{what}: gt {args:?}: {err}"
            );
            assert!(
                err.contains("hint:") && err.contains("nothing was changed"),
                "{what}: {err}"
            );
            assert_eq!(
                snapshot(&gt_dir),
                before,
                "{what}: gt {args:?} changed .gt/"
            );
        }
    }
}

/// Run gt and expect a usage error (exit 2) whose message names `flag`.
fn usage_error(t: &TestTown, args: &[&str], flag: &str, says: &str) {
    let err = t.fails(args, 2);
    assert!(
        err.contains(flag) && err.contains(says),
        "gt {args:?}: expected {flag:?} and {says:?} in: {err}"
    );
}

#[test]
fn flags_that_configure_a_mechanism_are_range_checked_naming_the_flag() {
    let (t, _) = town_with_a_bead();
    let src = t.source_repo("web");
    let src = src.to_str().unwrap();
    let events = t.event_count();
    let add =
        |extra: &[&'static str]| -> Vec<&str> { [&["rig", "add", "web", src], extra].concat() };
    let set = |extra: &[&'static str]| -> Vec<&str> { [&["rig", "set", "api"], extra].concat() };
    for (args, flag, says) in [
        (add(&["--remote", ""]), "--remote", "empty"),
        (set(&["--remote", ""]), "--remote", "empty"),
        (set(&["--remote", "  "]), "--remote", "empty"),
        (add(&["--memory", "1k"]), "--memory", "6 MiB"),
        (set(&["--memory", "5m"]), "--memory", "6 MiB"),
        (add(&["--cpus", "0"]), "--cpus", "0.01"),
        (add(&["--cpus", "-1"]), "--cpus", "0.01"),
        (set(&["--cpus", "-0.5"]), "--cpus", "0.01"),
        (set(&["--cpus", "0.001"]), "--cpus", "0.01"),
        (set(&["--cpus", "nan"]), "--cpus", "0.01"),
        (add(&["--pids", "0"]), "--pids", "16"),
        (set(&["--pids", "0"]), "--pids", "16"),
        (
            vec!["patrol", "--watch", "--interval", "0s"],
            "--interval",
            "minimum of 100ms",
        ),
        (
            vec!["patrol", "--watch", "--interval", "99999999999999h"],
            "--interval",
            "maximum of 10 years",
        ),
        (
            vec!["patrol", "--interval", "10000000000000000s"],
            "--interval",
            "maximum of 10 years",
        ),
        (
            vec!["log", "--since", "99999999999999h"],
            "--since",
            "maximum of 10 years",
        ),
    ] {
        usage_error(&t, &args, flag, says);
    }
    assert!(!t.root().join("rigs/web").exists(), "no rig was cloned");
    assert_eq!(t.event_count(), events, "nothing was written");
    // The edges are fine.
    t.ok(&set(&["--memory", "6m", "--cpus", "0.01"]));
}

#[test]
fn gt_toml_values_that_configure_a_mechanism_are_range_checked_naming_the_key() {
    let t = TestTown::new();
    let config = t.root().join("gt.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    for (section, line, key, says) in [
        (
            "[patrol]",
            "interval = \"0s\"",
            "patrol.interval",
            "minimum of 100ms",
        ),
        (
            "[patrol]",
            "lease = \"0s\"",
            "patrol.lease",
            "minimum of 1s",
        ),
        (
            "[patrol]",
            "lease = \"99999999999999h\"",
            "patrol.lease",
            "maximum of 10 years",
        ),
        (
            "[patrol]",
            "quiet_after = \"10000000000000000s\"",
            "patrol.quiet_after",
            "maximum of 10 years",
        ),
        ("[defaults]", "memory = \"1k\"", "defaults.memory", "6 MiB"),
        ("[defaults]", "cpus = 0.0", "defaults.cpus", "0.01"),
    ] {
        std::fs::write(&config, format!("{section}\n{line}\n")).unwrap();
        usage_error(&t, &["status"], key, says);
    }
    std::fs::write(&config, good).unwrap();
    t.ok(&["status"]);
}

#[test]
fn a_town_path_with_colons_and_commas_works() {
    // Bind mounts are structured (not `src:dst` strings), so no path is refused.
    let base = tempfile::tempdir().unwrap();
    let town = base.path().join("my town:v2,old");
    let out = std::process::Command::new(gt_bin())
        .arg("init")
        .arg(&town)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = base.path().join("src");
    make_repo(&src);
    let out = std::process::Command::new(gt_bin())
        .args(["rig", "add", "api", src.to_str().unwrap()])
        .env("GT_TOWN", &town)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_agent_in_a_town_path_with_colons_and_commas_works_on_its_branch() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new_with_prefix("gt:odd,path");
    assert!(t.root().to_string_lossy().contains(":odd,"));
    t.rig(
        "echo work > work.txt && git add work.txt && git commit -qm 'agent work' && sleep 60",
        &["--memory", "64m", "--network", "none"],
    );
    let id = t.bead("do work");
    let slung = t.json(&["sling", &id]);
    assert_eq!(slung[0]["outcome"], "dispatched", "{slung}");
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    let branch = format!("polecat/{}/{id}", polecat_name(&agent));
    wait_for("the agent's commit", 30, || {
        agent_branch_log(&t.root(), "api", polecat_name(&agent), &branch)
            .filter(|l| l.contains("agent work"))
    });
}

#[test]
fn bead_create_takes_its_body_from_a_file_or_stdin() {
    let (t, _) = town_with_a_bead();
    let file = t.dir.path().join("body.md");
    std::fs::write(&file, "# Fix it\n\nline two\n").unwrap();
    let id = t.ok(&[
        "bead",
        "create",
        "--rig",
        "api",
        "from a file",
        "-F",
        file.to_str().unwrap(),
    ]);
    let shown = t.json(&["bead", "show", id.trim()]);
    assert_eq!(shown["body"], "# Fix it\n\nline two\n", "{shown}");

    let out = t
        .cmd()
        .args([
            "bead",
            "create",
            "--rig",
            "api",
            "from stdin",
            "--body-file",
            "-",
        ])
        .write_stdin("piped body")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap();
    let shown = t.json(&["bead", "show", id.trim()]);
    assert_eq!(shown["body"], "piped body", "{shown}");

    let events = t.event_count();
    let both = t.fails(
        &[
            "bead",
            "create",
            "--rig",
            "api",
            "x",
            "-m",
            "a",
            "-F",
            file.to_str().unwrap(),
        ],
        2,
    );
    assert!(
        both.contains("--body-file") && both.contains("--body"),
        "{both}"
    );
    usage_error(
        &t,
        &["bead", "create", "--rig", "api", "x", "-F", "/no/such/file"],
        "--body-file",
        "cannot read",
    );
    std::fs::write(&file, [0xff, 0xfe, 0x00]).unwrap();
    usage_error(
        &t,
        &[
            "bead",
            "create",
            "--rig",
            "api",
            "x",
            "-F",
            file.to_str().unwrap(),
        ],
        "--body-file",
        "UTF-8",
    );
    assert_eq!(t.event_count(), events);
}

#[test]
fn mail_stored_but_not_delivered_says_delivery_pending_and_exits_0() {
    let (t, _) = town_with_a_bead();
    // A polecat of rig api (as a sling leaves one), whose inbox cannot be made: a
    // plain file stands where the directory belongs.
    let c = rusqlite::Connection::open(db_path(&t)).unwrap();
    c.execute(
        "INSERT INTO agents (id, rig, name, updated_at) VALUES ('api/nux', 'api', 'nux', 0)",
        [],
    )
    .unwrap();
    drop(c);
    let mailbox = t.root().join("agents/api/nux");
    std::fs::create_dir_all(&mailbox).unwrap();
    std::fs::create_dir_all(mailbox.join("box")).unwrap();
    std::fs::write(mailbox.join("box/inbox"), "not a directory").unwrap();

    let args = [
        "mail", "send", "api/nux", "-s", "hello", "-m", "body", "--id", "m-1",
    ];
    let out = t.run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: mail m-1 stored, delivery pending"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "m-1");
    let inbox = t.json(&["mail", "inbox", "--as", "api/nux"]);
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
    // A retry is the same message, not a second one.
    let again = t.run(&args);
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already sent"));
    let inbox = t.json(&["mail", "inbox", "--as", "api/nux"]);
    assert_eq!(inbox.as_array().unwrap().len(), 1, "{inbox}");
}

#[test]
fn a_hung_engine_costs_engine_timeout_not_a_minute_and_counts_as_down() {
    // An "engine" that accepts connections and never answers.
    let (t, _) = town_with_a_bead();
    t.configure("", "engine_timeout = \"2s\"");
    let sock = t.dir.path().join("hung.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c); // keep it open, say nothing
        }
    });
    let host = format!("unix://{}", sock.display());
    let mut child = t.spawn(&["patrol"], &[("DOCKER_HOST", host.as_str())]);
    // Liveness, not speed: with the default of 60 s this would still be waiting.
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("patrol still waits on a hung engine after 40 s (engine_timeout = 2s)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(5), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Docker"), "{err}");
}

#[test]
fn a_disk_that_fills_during_the_checkout_leaves_nothing_half_made_and_loses_nothing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // The rigs (clone and worktrees) on an 8 MiB disk: room for the clone of a repository
    // with a 3 MiB incompressible file, not for a worktree of it as well.
    let Some(disk) = SmallDisk::mount(&t.root().join("rigs"), "8m") else {
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let src = t.source_repo("api");
    let mut big = vec![0u8; 3 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut big)
        .unwrap();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    git(&src, &["add", "big.bin"]);
    git(&src, &["commit", "-q", "-m", "big"]);
    let remote = t.dir.path().join("remote.git");
    git(
        t.dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    t.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &test_image(),
        "--remote",
        remote.to_str().unwrap(),
        "--command",
        "echo done > note.txt; gt done -m finished",
    ]);
    let id = t.bead("big checkout");
    let out = t.run(&["sling", &id]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("full") || err.contains("space"), "{err}");
    // Nothing half-made stays: no worktree, no branch, the bead open again.
    assert_eq!(t.bead_status(&id), "open");
    let polecats = t.root().join("rigs/api/polecats");
    let left: Vec<_> = std::fs::read_dir(&polecats)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    let repo = t.root().join("rigs/api/repo");
    assert_eq!(git(&repo, &["branch", "--list", "polecat/*"]).trim(), "");
    // Room again: the next dispatch gets a complete worktree, and the work lands whole.
    disk.resize("64m");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    let mr = t.json(&["mq", "list", "--all"])[0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    let landed = git(&remote, &["rev-parse", &format!("{mr}:big.bin")]);
    let source = git(&src, &["rev-parse", "HEAD:big.bin"]);
    assert_eq!(landed, source, "the big file landed whole");
    let files = git(&remote, &["ls-tree", "--name-only", &mr]);
    assert!(
        files.contains("note.txt") && files.contains("README"),
        "{files}"
    );
    drop(disk);
}
