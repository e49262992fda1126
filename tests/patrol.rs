//! Issue 5: patrol recovers from crashes, OOM kills, engine restarts and itself being
//! killed, on a real Docker engine; it is safe under cron (overlapping passes).

mod support;

use support::*;

const ALWAYS_FAIL: &str = "echo failing on purpose >&2; exit 1";

#[test]
fn an_oom_killed_agent_is_recorded_redispatched_and_finally_failed_with_one_mail() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 2\nretry_backoff = [\"0s\"]", "");
    let alloc = "x=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; while :; do x=\"$x$x\"; done";
    t.rig(alloc, &["--memory", "16m"]);
    let id = t.bead("eat memory");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    let p = t.patrol_json();
    assert_eq!(p["deaths"][0]["oom"], true, "{p}");
    assert_eq!(p["deaths"][0]["reason"], "OOM-killed");
    assert_eq!(p["redispatched"][0], id.as_str());
    t.patrol_until("the bead to fail", 60, |t| t.bead_status(&id) == "failed");
    let ds = t.dispatches(&id);
    assert_eq!(ds.len(), 2);
    assert!(ds.iter().all(|d| d["oom"] == true), "{ds:?}");
    t.ok(&["patrol"]);
    let mails: Vec<_> = t.mayor_mail_id("exhausted-");
    assert_eq!(mails.len(), 1);
    t.doctor_clean();
}

#[test]
fn the_second_retry_waits_its_backoff() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 3\nretry_backoff = [\"0s\", \"5s\"]", "");
    t.rig(ALWAYS_FAIL, &[]);
    let id = t.bead("flaky");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    let p = t.patrol_json();
    assert_eq!(
        p["redispatched"].as_array().unwrap().len(),
        1,
        "the first retry is immediate: {p}"
    );
    t.wait_exited(1);
    let p = t.patrol_json();
    assert_eq!(p["deaths"].as_array().unwrap().len(), 1);
    assert!(
        p["redispatched"].as_array().unwrap().is_empty(),
        "the second retry must wait: {p}"
    );
    let why = t.json(&["polecat", "list"])[0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("exited with code 1 without done") && why.contains("backoff"),
        "{why}"
    );
    t.patrol_until("the third dispatch", 30, |t| t.dispatches(&id).len() == 3);
    let ds = t.dispatches(&id);
    let waited = ds[2]["started_at"].as_i64().unwrap() - ds[1]["ended_at"].as_i64().unwrap();
    assert!(waited >= 5000, "re-dispatched after {waited} ms");
}

#[test]
fn a_broken_rig_trips_the_breaker_once_and_resume_restarts_dispatching() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure(
        "max_attempts = 5\nretry_backoff = [\"0s\"]",
        "breaker_failures = 10",
    );
    t.rig(ALWAYS_FAIL, &["--max-polecats", "12"]);
    let ids: Vec<String> = (0..12).map(|i| t.bead(&format!("doomed {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    t.ok(&args);
    t.wait_exited(12);
    let p = t.patrol_json();
    assert_eq!(p["breaker_open"], true, "{p}");
    assert!(p["redispatched"].as_array().unwrap().is_empty(), "{p}");
    assert!(t.running_containers().is_empty());
    t.ok(&["patrol"]);
    let mails: Vec<_> = t.mayor_mail_id("breaker-");
    assert_eq!(mails.len(), 1);
    assert_eq!(t.json(&["status"])["breaker_open"], true);
    let extra = t.bead("new work");
    let err = t.fails(&["sling", &extra], 3);
    assert!(err.contains("circuit breaker"), "{err}");
    assert!(t.ok(&["resume"]).contains("closed"));
    let p = t.patrol_json();
    assert_eq!(p["redispatched"].as_array().unwrap().len(), 12, "{p}");
}

#[test]
fn killing_every_container_at_once_is_recovered_in_one_pass() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(&scripted_agent("AGENT_HOLD=1"), &["--max-polecats", "5"]);
    let ids: Vec<String> = (0..5).map(|i| t.bead(&format!("task {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    t.ok(&args);
    let running = t.running_containers();
    assert_eq!(running.len(), 5);
    let mut kill = vec!["kill"];
    kill.extend(running.iter().map(String::as_str));
    assert!(docker(&kill).status.success());
    // `docker kill` returns once the signal is sent; wait for the engine to see them exit.
    t.wait_exited(5);
    let p = t.patrol_json();
    assert_eq!(p["deaths"].as_array().unwrap().len(), 5, "{p}");
    assert_eq!(p["redispatched"].as_array().unwrap().len(), 5, "{p}");
    t.doctor_clean();
    for mailbox in std::fs::read_dir(t.root().join("agents/api")).unwrap() {
        std::fs::write(mailbox.unwrap().path().join("box/release"), "").unwrap();
    }
    t.patrol_until("all five done", 90, |t| {
        ids.iter().all(|id| t.bead_status(id) == "done")
    });
    assert_eq!(
        t.json(&["mq", "list", "--all"]).as_array().unwrap().len(),
        5
    );
    for id in &ids {
        let branch = t.json(&["bead", "show", id])["branch"]
            .as_str()
            .unwrap()
            .to_string();
        git(&remote, &["rev-parse", &format!("refs/heads/{branch}")]);
    }
    t.doctor_clean();
}

#[test]
fn an_engine_restart_under_five_agents_is_recovered() {
    if !require_docker() {
        return;
    }
    let mut engine = PrivateEngine::start();
    let t = TestTown::new();
    let src = t.source_repo("api");
    let host = engine.host();
    let run = |args: &[&str]| {
        t.cmd()
            .env("DOCKER_HOST", &host)
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8(o.stdout).unwrap()
    };
    ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &test_image(),
        "--command",
        "sleep 300",
        "--max-polecats",
        "5",
    ]);
    let ids: Vec<String> = (0..5).map(|i| t.bead(&format!("task {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    ok(&args);
    engine.restart();
    let p: serde_json::Value = serde_json::from_str(&ok(&["--json", "patrol"])).unwrap();
    assert_eq!(p["deaths"].as_array().unwrap().len(), 5, "{p}");
    assert_eq!(p["redispatched"].as_array().unwrap().len(), 5, "{p}");
    // Stopped by the engine, not failed: the restart burned no attempt.
    for id in &ids {
        let b = t.json(&["bead", "show", id]);
        assert_eq!(b["attempts"], 1, "{b}");
        let reason = b["dispatches"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("not counted as an attempt"), "{b}");
    }
    let live = std::process::Command::new("docker")
        .args(["ps", "-q"])
        .env("DOCKER_HOST", &host)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&live.stdout)
            .split_whitespace()
            .count(),
        5
    );
    let o = run(&["doctor"]);
    assert!(o.status.success(), "{o:?}");
    // The engine stopped for good: sling and patrol say so (exit 5) and change nothing.
    engine.stop();
    let extra = t.bead("while docker is down");
    assert_eq!(run(&["sling", &extra]).status.code(), Some(5));
    assert_eq!(t.bead_status(&extra), "open");
    assert_eq!(run(&["patrol"]).status.code(), Some(5));
    let pl = t.json(&["polecat", "list"]);
    assert!(
        pl.as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "running"),
        "{pl}"
    );
}

#[test]
fn two_patrols_at_the_same_moment_never_redispatch_one_agent_twice() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure(
        "max_attempts = 50\nretry_backoff = [\"0s\"]",
        "breaker_failures = 1000",
    );
    t.rig("sleep 300", &[]);
    let id = t.bead("contested");
    t.ok(&["sling", &id]);
    for round in 1..=10 {
        let running = t.running_containers();
        assert_eq!(running.len(), 1, "round {round}");
        assert!(docker(&["kill", &running[0]]).status.success());
        wait_for("the killed container to exit", 30, || {
            t.running_containers().is_empty().then_some(())
        });
        let children: Vec<_> = (0..2)
            .map(|_| t.spawn(&["--json", "patrol"], &[]))
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        assert!(outs.iter().all(|o| o.status.success()), "{outs:?}");
        let redispatches: usize = outs
            .iter()
            .map(|o| {
                serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["redispatched"]
                    .as_array()
                    .map_or(0, |a| a.len())
            })
            .sum();
        assert_eq!(redispatches, 1, "round {round}: {outs:?}");
        assert_eq!(t.dispatches(&id).len(), round + 1);
    }
    t.doctor_clean();
}

fn killed_patrol_converges(fp: &str) {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure(
        "max_attempts = 5\nretry_backoff = [\"0s\"]\nspawn_timeout = \"1s\"",
        "",
    );
    let remote = t.rig_with_remote(
        &scripted_agent("AGENT_FAIL_GEN=1"),
        &["--max-polecats", "2"],
    );
    let (a, b) = (t.bead("one"), t.bead("two"));
    t.ok(&["sling", &a]);
    t.ok(&["sling", &b]);
    t.wait_exited(2);
    let out = t
        .cmd()
        .args(["patrol"])
        .env("FAILPOINTS", format!("{fp}=panic"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{fp}: the patrol should have died");
    t.patrol_until(&format!("convergence after {fp}"), 90, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    t.ok(&["patrol"]);
    for id in [&a, &b] {
        let mrs = t.json(&["mq", "list", "--all"]);
        assert_eq!(
            mrs.as_array()
                .unwrap()
                .iter()
                .filter(|m| m["bead"] == id.as_str())
                .count(),
            1,
            "{fp}"
        );
        let started = t
            .dispatches(id)
            .iter()
            .filter(|d| !d["container_id"].is_null())
            .count();
        assert!(started <= 3, "{fp}: {id} started {started} containers");
        git(
            &remote,
            &[
                "rev-parse",
                &format!(
                    "refs/heads/{}",
                    t.json(&["bead", "show", id])["branch"].as_str().unwrap()
                ),
            ],
        );
    }
    assert!(t.running_containers().is_empty(), "{fp}");
    t.doctor_clean();
}

macro_rules! killed_patrol {
    ($($name:ident => $fp:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            killed_patrol_converges($fp);
        }
    )*};
}

killed_patrol! {
    patrol_killed_after_ingest => "patrol.after_ingest",
    patrol_killed_after_list => "patrol.after_list",
    patrol_killed_after_deaths => "patrol.after_deaths",
    patrol_killed_after_orphans => "patrol.after_orphans",
    patrol_killed_after_redispatch_claim => "sling.after_claim",
    patrol_killed_after_redispatch_worktree => "sling.after_worktree",
    patrol_killed_after_redispatch_create => "sling.after_create",
    patrol_killed_after_redispatch_start => "sling.after_start",
}

#[test]
fn docker_down_exits_5_marks_nothing_dead_and_escalates_once() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote("sleep 300", &[]);
    let id = t.bead("keeps running");
    t.ok(&["sling", &id]);
    for pass in 1..=4 {
        let out = t
            .cmd()
            .args(["patrol"])
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "pass {pass}: {out:?}");
        let escalations = t.mayor_mail_id("runtime-down-").len();
        assert_eq!(escalations, usize::from(pass >= 3), "pass {pass}");
    }
    assert_eq!(t.json(&["polecat", "list"])[0]["state"], "running");
    assert_eq!(t.bead_status(&id), "in_progress");
    let p = t.patrol_json();
    assert!(p["deaths"].as_array().unwrap().is_empty(), "{p}");
    assert_eq!(t.running_containers().len(), 1);
    t.doctor_clean();
}

#[test]
fn a_patrol_during_a_sling_leaves_the_spawning_agent_alone() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote("sleep 300", &[]);
    let id = t.bead("slow start");
    // The sling pauses for 3 s between creating its container and starting it.
    let sling = t.spawn(
        &["sling", &id],
        &[("FAILPOINTS", "sling.after_create=sleep(3000)")],
    );
    wait_for("the container to be created", 30, || {
        (t.all_containers() == 1).then_some(())
    });
    let p = t.patrol_json();
    assert!(p["deaths"].as_array().unwrap().is_empty(), "{p}");
    assert!(p["orphans_removed"].as_array().unwrap().is_empty(), "{p}");
    let out = sling.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(t.bead_status(&id), "in_progress");
    assert_eq!(t.dispatches(&id).len(), 1);
    assert_eq!(t.running_containers().len(), 1);
}

#[test]
fn chaos_every_bead_is_done_exactly_once() {
    if !require_docker() {
        return;
    }
    let seed: u64 = std::env::var("GT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos seed {seed} (rerun with GT_CHAOS_SEED={seed})");
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let t = TestTown::new();
    t.configure(
        "max_attempts = 30\nretry_backoff = [\"0s\"]\nspawn_timeout = \"1s\"",
        "breaker_failures = 1000",
    );
    t.rig_with_remote(&scripted_agent("AGENT_SLEEP=1"), &["--max-polecats", "6"]);
    let ids: Vec<String> = (0..6).map(|i| t.bead(&format!("chaos {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    t.ok(&args);
    let fps = [
        "patrol.after_ingest",
        "patrol.after_list",
        "patrol.after_sagas",
        "patrol.after_deaths",
        "saga.pushed.after",
        "saga.released.before",
        "sling.after_create",
    ];
    for pass in 0..10 {
        let running = t.running_containers();
        if !running.is_empty() && next(2) == 0 {
            let victim = &running[next(running.len() as u64) as usize];
            docker(&["kill", victim]);
        }
        let mut cmd = t.cmd();
        cmd.arg("patrol");
        if next(3) == 0 {
            cmd.env(
                "FAILPOINTS",
                format!("{}=panic", fps[next(fps.len() as u64) as usize]),
            );
        }
        let out = cmd.output().unwrap();
        eprintln!("seed {seed} pass {pass}: exit {:?}", out.status.code());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    t.patrol_until(&format!("every bead done (seed {seed})"), 120, |t| {
        ids.iter().all(|id| t.bead_status(id) == "done")
    });
    t.ok(&["patrol"]);
    let mrs = t.json(&["mq", "list", "--all"]);
    for id in &ids {
        assert_eq!(
            mrs.as_array()
                .unwrap()
                .iter()
                .filter(|m| m["bead"] == id.as_str())
                .count(),
            1,
            "seed {seed}: {id}"
        );
    }
    let mail = t.mayor_mail();
    let ids_seen: std::collections::HashSet<_> = mail
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids_seen.len(), mail.len(), "seed {seed}: duplicate mail");
    for id in &ids {
        let done = mail
            .iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{id} done"))
            })
            .count();
        assert_eq!(done, 1, "seed {seed}: {id} done mails");
    }
    t.doctor_clean();
}

#[test]
fn a_git_lock_left_by_a_killed_agent_does_not_block_its_retry() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 3\nretry_backoff = [\"0s\"]", "");
    t.rig_with_remote(&scripted_agent("AGENT_DIE_LOCKED_GEN=1"), &[]);
    let id = t.bead("killed mid-commit");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    // The agent's own view of its worktree's git dir (mounted over the read-only rig
    // repository's worktrees/<name>).
    let lock = t
        .dir
        .path()
        .join("town/agents/api")
        .join(t.json(&["polecat", "list"])[0]["name"].as_str().unwrap())
        .join("git/admin/index.lock");
    assert!(lock.exists(), "the first attempt leaves {}", lock.display());
    t.patrol_until("the bead to be done", 60, |t| t.bead_status(&id) == "done");
    let ds = t.dispatches(&id);
    assert_eq!(ds.len(), 2, "one retry, not {}: {ds:?}", ds.len());
    let log = t.json(&["log", "--subject", &id]);
    let removed: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "git.stale_locks_removed")
        .collect();
    assert_eq!(removed.len(), 1, "{log}");
    assert!(
        removed[0]["data"]["paths"][0]
            .as_str()
            .unwrap()
            .ends_with("index.lock"),
        "{log}"
    );
    t.doctor_clean();
}

#[test]
fn a_queued_bead_is_dispatched_when_a_slot_frees() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent(""), &["--max-polecats", "1"]);
    let (a, b) = (t.bead("first"), t.bead("second"));
    t.ok(&["sling", &a]);
    assert_eq!(t.json(&["sling", &b])[0]["outcome"], "queued");
    t.patrol_until("the queued bead to be dispatched", 60, |t| {
        t.bead_status(&b) != "open"
    });
    t.patrol_until("both done", 60, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    t.doctor_clean();
}

#[test]
fn a_vanished_worktree_is_recreated_and_a_vanished_branch_is_escalated() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 5\nretry_backoff = [\"0s\"]", "");
    t.rig_with_remote("sleep 300", &["--max-polecats", "2"]);
    let (a, b) = (t.bead("lose the worktree"), t.bead("lose the branch"));
    let sa = t.json(&["sling", &a]);
    let sb = t.json(&["sling", &b]);
    let wt_a = t.worktree(sa[0]["agent"].as_str().unwrap());
    let wt_b = t.worktree(sb[0]["agent"].as_str().unwrap());
    let repo = t.root().join("rigs/api/repo");
    git(
        &wt_a,
        &["commit", "-q", "--allow-empty", "-m", "saved work"],
    );
    for c in t.running_containers() {
        docker(&["rm", "-f", &c]);
    }
    std::fs::remove_dir_all(&wt_a).unwrap();
    std::fs::remove_dir_all(&wt_b).unwrap();
    git(&repo, &["worktree", "prune"]);
    git(&repo, &["branch", "-D", sb[0]["branch"].as_str().unwrap()]);
    let p = t.patrol_json();
    assert_eq!(p["redispatched"], serde_json::json!([a]), "{p}");
    assert!(
        git(&wt_a, &["log", "--format=%s"]).contains("saved work"),
        "the worktree came back from its branch"
    );
    assert_eq!(t.bead_status(&b), "escalated");
    let lost: Vec<_> = t.mayor_mail_subject("vanished");
    assert_eq!(lost.len(), 1);
    t.doctor_clean();
}

#[test]
fn containers_of_stale_generations_and_safe_stray_worktrees_are_removed_the_rest_reported() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote("sleep 300", &[]);
    let id = t.bead("work");
    let s = t.json(&["sling", &id]);
    let name = polecat_name(s[0]["agent"].as_str().unwrap()).to_string();
    // A container of this town claiming an old generation of the same agent.
    let out = docker(&[
        "run",
        "-d",
        "--label",
        &format!("gt.town={}", t.id),
        "--label",
        "gt.rig=api",
        "--label",
        &format!("gt.agent={name}"),
        "--label",
        "gt.generation=0",
        &test_image(),
        "sleep",
        "300",
    ]);
    assert!(out.status.success());
    std::fs::create_dir_all(t.root().join("rigs/api/polecats/leftover")).unwrap();
    // Worktrees of the rig that no agent owns: one clean on a merged commit, one with
    // work that exists nowhere else.
    let repo = t.root().join("rigs/api/repo");
    let polecats = t.root().join("rigs/api/polecats");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "stray-clean",
            polecats.join("clean").to_str().unwrap(),
        ],
    );
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "stray-dirty",
            polecats.join("dirty").to_str().unwrap(),
        ],
    );
    std::fs::write(polecats.join("dirty/notes.txt"), "only copy").unwrap();
    let p = t.patrol_json();
    assert_eq!(p["orphans_removed"].as_array().unwrap().len(), 1, "{p}");
    let kept = p["stray_worktrees"].to_string();
    assert!(
        kept.contains("leftover (not a worktree of this rig)"),
        "{p}"
    );
    assert!(kept.contains("dirty (1 uncommitted change(s))"), "{p}");
    assert!(
        p["stray_worktrees_removed"].to_string().contains("clean"),
        "{p}"
    );
    assert!(polecats.join("leftover").exists(), "kept");
    assert!(
        polecats.join("dirty/notes.txt").exists(),
        "kept, work and all"
    );
    assert!(
        !polecats.join("clean").exists(),
        "clean and recorded: removed"
    );
    git(&repo, &["rev-parse", "--verify", "refs/heads/stray-clean"]);
    assert_eq!(t.running_containers().len(), 1);
    t.doctor_clean();
}

#[test]
fn patrol_watch_finishes_work_without_help() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent(""), &[]);
    let id = t.bead("watched");
    let mut watch = t.spawn(&["patrol", "--watch", "--interval", "200ms"], &[]);
    t.ok(&["sling", &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(deadline_secs(30));
    let done = loop {
        if t.bead_status(&id) == "done" {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    watch.kill().unwrap();
    let _ = watch.wait();
    assert!(done, "patrol --watch did not finish the bead");
    assert_eq!(
        t.json(&["mq", "list", "--all"]).as_array().unwrap().len(),
        1
    );
}

#[test]
fn a_patrol_paused_past_its_lease_writes_nothing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure(
        "max_attempts = 50\nretry_backoff = [\"0s\"]",
        "lease = \"3s\"\nbreaker_failures = 1000",
    );
    t.rig("exit 1", &[]);
    let id = t.bead("contested");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    // A lists the containers (seeing generation 1 dead), then stalls past its lease.
    let a = t.spawn(
        &["patrol"],
        &[("FAILPOINTS", "patrol.after_list=sleep(10000)")],
    );
    wait_for("patrol A to hold the lease", 10, || {
        let c = rusqlite::Connection::open(t.root().join(".gt/town.db")).ok()?;
        c.query_row("SELECT token FROM leases WHERE expires_at > 0", [], |r| {
            r.get::<_, i64>(0)
        })
        .ok()
    });
    // While A's lease lives, another patrol says so in one line and exits 0.
    let busy = t.ok(&["patrol"]);
    assert!(
        busy.starts_with("another patrol is running") && busy.lines().count() == 1,
        "{busy}"
    );
    wait_for("A's lease to expire", 30, || {
        let c = rusqlite::Connection::open(t.root().join(".gt/town.db")).ok()?;
        let expires: i64 = c
            .query_row("SELECT expires_at FROM leases", [], |r| r.get(0))
            .ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        (expires < now).then_some(())
    });
    // B takes the expired lease and re-dispatches generation 1's bead.
    let b = t.patrol_json();
    assert_eq!(b["redispatched"], serde_json::json!([id]), "{b}");
    // A wakes with a stale view; every write it tries is fenced off.
    let out = a.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("lost its lease"), "{err}");
    assert_eq!(
        t.dispatches(&id).len(),
        2,
        "A must not have re-dispatched again"
    );
    let died = t
        .json(&["log"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "agent.died")
        .count();
    assert_eq!(died, 1, "A must not have recorded a second death");
}

#[test]
fn status_warns_when_work_waits_on_a_patrol_that_does_not_run() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("", "stale_after = \"5s\"");
    t.rig("sleep 300", &[]);
    let s = t.json(&["status"]);
    assert_eq!(s["patrol"]["last_pass"], serde_json::Value::Null, "{s}");
    assert_eq!(
        s["patrol"]["warning"],
        serde_json::Value::Null,
        "no work waits yet: {s}"
    );
    let id = t.bead("work");
    t.ok(&["sling", &id]);
    let s = t.json(&["status"]);
    assert!(
        s["patrol"]["warning"]
            .as_str()
            .is_some_and(|w| w.contains("never run")),
        "{s}"
    );
    assert!(t.ok(&["status"]).contains("WARNING: patrol has never run"));
    let d = t.json(&["doctor"]);
    assert!(
        d["warnings"].to_string().contains("patrol has never run"),
        "doctor warns too: {d}"
    );
    t.ok(&["patrol"]);
    let s = t.json(&["status"]);
    assert!(s["patrol"]["last_pass"].is_i64(), "{s}");
    assert_eq!(s["patrol"]["warning"], serde_json::Value::Null, "{s}");
    assert!(t.ok(&["status"]).contains("patrol: last pass "));
    // No pass for longer than stale_after while an agent works: said aloud.
    let w = wait_for("the stale-patrol warning", 30, || {
        t.json(&["status"])["patrol"]["warning"]
            .as_str()
            .map(String::from)
    });
    assert!(w.contains("is cron still running"), "{w}");
}

#[test]
fn a_bead_failed_by_oom_lands_after_rig_set_memory_and_reopen() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1\nretry_backoff = [\"0s\"]", "");
    // The agent needs ~60 MB before it can work: too much for 16m, fine in 256m.
    let needy = "x=$(head -c 30000000 /dev/zero | tr '\\0' x); echo \"held ${#x} bytes\"";
    t.rig_with_remote(&scripted_agent(needy), &[]);
    t.ok(&["rig", "set", "api", "--memory", "16m"]);
    let id = t.bead("hungry");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead to fail", 60, |t| t.bead_status(&id) == "failed");
    let ds = t.dispatches(&id);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0]["oom"], true, "{ds:?}");

    let shown = t.ok(&["bead", "show", &id]);
    assert!(
        shown.contains(&format!("next: `gt bead reopen {id}` gives it another go")),
        "{shown}"
    );
    t.ok(&["rig", "set", "api", "--memory", "256m"]);
    t.ok(&["bead", "reopen", &id]);
    let slung = t.json(&["sling", &id]);
    assert_eq!(slung[0]["outcome"], "dispatched", "{slung}");
    let container = slung[0]["container"].as_str().unwrap().to_string();
    let out = docker(&["inspect", "-f", "{{.HostConfig.Memory}}", &container]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (256 << 20).to_string()
    );
    t.patrol_until("the bead to be done", 60, |t| t.bead_status(&id) == "done");
    let ds = t.dispatches(&id);
    assert_eq!(ds.len(), 2, "{ds:?}");
    assert_eq!(
        ds[0]["branch"], ds[1]["branch"],
        "the retry resumes on the same branch"
    );
    assert_eq!(
        t.json(&["mq", "list", "--all"]).as_array().unwrap().len(),
        1
    );
    t.doctor_clean();
}

#[test]
fn a_quiet_agent_is_reported_once_and_a_talking_one_is_not() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("", "quiet_after = \"3s\"");
    t.rig(
        "case \"$(gt hook)\" in *chatty*) while :; do gt checkpoint -m tick >/dev/null; sleep 0.3; done;; esac; sleep 300",
        &[],
    );
    let (silent, chatty) = (t.bead("silent"), t.bead("chatty"));
    t.ok(&["sling", &silent, &chatty]);
    wait_for("the chatty agent's first checkpoint", 30, || {
        let ds = t.dispatches(&chatty);
        (!ds[0]["checkpoints"].as_array()?.is_empty()).then_some(())
    });
    let quiet = wait_for("the silent agent to be reported", 30, || {
        let p = t.patrol_json();
        let q = p["quiet"].as_array().unwrap().clone();
        (!q.is_empty()).then_some(q)
    });
    assert_eq!(quiet.len(), 1, "{quiet:?}");
    assert!(
        quiet[0]
            .as_str()
            .unwrap()
            .contains(&format!("on {silent}: quiet for")),
        "{quiet:?}"
    );
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert_eq!(t.mayor_mail_id("quiet-").len(), 1, "one mail per dispatch");
    // `gt status` names it as a problem (and not the chatty one).
    let status = t.ok(&["status"]);
    assert!(
        status.contains("PROBLEM: 1 agent(s) quiet")
            && status.contains(&format!("on {silent}: quiet for")),
        "{status}"
    );
    let list = t.json(&["polecat", "list"]);
    let why = |bead: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["bead"] == bead)
            .unwrap()["why"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(why(&silent).contains("quiet for"), "{}", why(&silent));
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|p| p["last_heard"].is_i64()),
        "{list}"
    );
    assert_eq!(why(&chatty), format!("working on {chatty}"));
}

#[test]
fn an_engine_lost_after_the_list_call_is_one_outage_exit_5_and_one_mail() {
    if !require_docker() {
        return;
    }
    let mut engine = PrivateEngine::start();
    let t = TestTown::new();
    let host = engine.host();
    let src = t.source_repo("api");
    let with_engine = |args: &[&str]| {
        t.cmd()
            .env("DOCKER_HOST", &host)
            .args(args)
            .output()
            .unwrap()
    };
    let o = with_engine(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &test_image(),
        "--command",
        &scripted_agent("AGENT_HOLD=1"),
        "--max-polecats",
        "3",
    ]);
    assert!(o.status.success(), "{o:?}");
    // Two agents that said done (their sagas need the engine) and one still working.
    let ids: Vec<String> = (0..3).map(|i| t.bead(&format!("task {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    assert!(with_engine(&args).status.success());
    let agents: Vec<String> = t
        .json(&["polecat", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["rig"].as_str().unwrap(),
                p["name"].as_str().unwrap()
            )
        })
        .collect();
    for a in &agents[..2] {
        std::fs::write(t.root().join("agents").join(a).join("box/release"), "").unwrap();
    }
    // Read commands may ingest the checkpoints meanwhile: wait for the done requests.
    wait_for("two done requests", 60, || {
        let done = |a: &String| {
            std::fs::read_dir(t.root().join("agents").join(a).join("outbox")).map_or(0, |d| {
                d.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .filter(|v| v["kind"] == "done")
                    .count()
            })
        };
        (agents[..2].iter().map(done).sum::<usize>() == 2).then_some(())
    });
    // The pass lists the containers, then the engine goes away before the sagas ask it.
    let release = t.dir.path().join("release-patrol");
    let p = t.paused_at_env(
        &["patrol", "--json"],
        "patrol.after_list",
        Some(&release),
        &[("DOCKER_HOST", &host)],
    );
    engine.stop();
    std::fs::write(&release, "").unwrap();
    let (code, err) = p.finish();
    assert_eq!(code, 5, "an engine lost mid-pass is exit 5: {err}");
    // Nothing was marked dead or stuck for it; the agents are where they were.
    let pl = t.json(&["polecat", "list"]);
    for p in pl.as_array().unwrap() {
        assert_ne!(p["state"], "dead", "{pl}");
    }
    assert!(
        t.mayor_mail_subject("saga").is_empty(),
        "no saga escalation per agent"
    );
    // Further passes while it is down: one escalation for the whole outage.
    for _ in 0..3 {
        let o = with_engine(&["patrol"]);
        assert_eq!(o.status.code(), Some(5), "{o:?}");
    }
    let mails = t.mayor_mail_subject("unreachable");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(t.mayor_mail_subject("saga").is_empty());
}

#[test]
fn a_hanging_remote_delays_no_other_recovery_and_is_retried_later() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure(
        "retry_backoff = [\"0s\"]\nmax_attempts = 5",
        "push_timeout = \"2s\"\nbreaker_failures = 1000",
    );
    // beta dies at once; alpha finishes and its done saga pushes.
    let cmd = format!(
        "if [ \"$GT_AGENT\" = api/beta ]; then exit 1; fi\n{}",
        scripted_agent("")
    );
    let remote = t.rig_with_remote(&cmd, &["--max-polecats", "4"]);
    // The remote accepts nothing: its pre-receive hook hangs.
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\nsleep 600\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let a = t.bead("pushes");
    let b = t.bead("dies");
    t.ok(&["sling", &a, "--polecat", "alpha"]);
    t.ok(&["sling", &b, "--polecat", "beta"]);
    t.wait_exited(2);
    // One pass: beta's death is recorded and it is re-dispatched, although alpha's push
    // hangs in the same pass; the push gives up at its deadline and waits for a later pass.
    let started = std::time::Instant::now();
    let p = t.patrol_json();
    let took = started.elapsed();
    let deaths = p["deaths"].as_array().unwrap();
    assert_eq!(deaths.len(), 1, "{p}");
    assert_eq!(deaths[0]["agent"], "api/beta", "{p}");
    assert!(p["redispatched"].to_string().contains(&b), "{p}");
    let pending = p["sagas_pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{p}");
    assert!(pending[0].as_str().unwrap().contains("timed out"), "{p}");
    // 3 tries × 2 s, plus 1.5 s of backoff.
    assert!(
        took < std::time::Duration::from_secs(deadline_secs(30)),
        "{took:?}"
    );
    // The remote comes back: a later pass lands alpha's work.
    std::fs::remove_file(&hook).unwrap();
    t.patrol_until("alpha's push", 60, |t| t.bead_status(&a) == "done");
    let pushed = git(&remote, &["branch", "--list"]);
    assert!(pushed.contains(&format!("polecat/alpha/{a}")), "{pushed}");
}
