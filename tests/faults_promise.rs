//! Faults of the world against issue 21's surfaces (the merge queue, the done saga,
//! per-rig isolation): a full disk while a candidate is built or a done is taken in,
//! a remote whose fetch hangs, a remote moved away or rewound in the middle of a
//! landing. Each test asserts the safe behaviour: nothing lost, nothing twice, nobody
//! blamed for the host's fault, no rig delayed by another's remote.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// A rig `NAME` whose remote is a bare clone of its source (so the remote has `main`),
/// with `command` and `extra` settings; returns the remote's path.
fn landing_rig_named(
    t: &TestTown,
    name: &str,
    command: &str,
    extra: &[&str],
) -> std::path::PathBuf {
    let src = t.source_repo(name);
    let remote = t
        .root()
        .parent()
        .unwrap()
        .join(format!("{name}-remote.git"));
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(&remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let image = test_image();
    let mut args = vec![
        "rig",
        "add",
        name,
        src.to_str().unwrap(),
        "--image",
        &image,
        "--command",
        command,
        "--memory",
        "256m",
        "--max-polecats",
        "4",
        "--remote",
        remote.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    t.ok(&args);
    remote
}

fn landing_rig(t: &TestTown, command: &str, extra: &[&str]) -> std::path::PathBuf {
    landing_rig_named(t, "api", command, extra)
}

fn on_remote(remote: &std::path::Path, args: &[&str]) -> String {
    git(remote, args).trim().to_string()
}

fn mrs(t: &TestTown, bead: &str) -> Vec<serde_json::Value> {
    t.json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["bead"] == bead)
        .cloned()
        .collect()
}

fn mr_states(t: &TestTown, bead: &str) -> Vec<String> {
    mrs(t, bead)
        .iter()
        .map(|m| m["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn latest_mr(t: &TestTown, bead: &str) -> serde_json::Value {
    mrs(t, bead)
        .last()
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn events_of(t: &TestTown, kind: &str) -> Vec<serde_json::Value> {
    t.json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

fn attempts(t: &TestTown, bead: &str) -> i64 {
    t.json(&["bead", "show", bead])["attempts"]
        .as_i64()
        .unwrap_or(-1)
}

/// Sling a new bead of rig `rig` and wait (patrolling) for its work to be done.
fn done_bead_of(t: &TestTown, rig: &str, title: &str) -> String {
    let id = t
        .ok(&["bead", "create", "--rig", rig, title])
        .trim()
        .to_string();
    t.ok(&["sling", &id]);
    t.patrol_until(&format!("{title} done"), 90, |t| {
        t.bead_status(&id) == "done"
    });
    id
}

fn done_bead(t: &TestTown, title: &str) -> String {
    done_bead_of(t, "api", title)
}

/// Fill the filesystem holding `dir` to the last byte (a file `filler` in it).
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    // The last partial blocks too.
    let small = [0x5au8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    p
}

/// How many times `file` was added on `main` of `remote` (landed exactly once: 1).
fn times_landed(remote: &std::path::Path, file: &str) -> usize {
    on_remote(
        remote,
        &["log", "--format=%H", "--diff-filter=A", "main", "--", file],
    )
    .lines()
    .filter(|l| !l.is_empty())
    .count()
}

#[test]
fn a_full_disk_while_a_candidate_is_built_blames_nobody_and_the_change_lands_once_there_is_room() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // The rigs (the rig's repository, where candidates are written) on a small disk.
    let Some(disk) = SmallDisk::mount(&t.root().join("rigs"), "32m") else {
        return;
    };
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "review"]);
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let id = done_bead(&t, "lands after the disk is freed");
    t.ok(&["mq", "approve", &id]);
    // The landing stops just before it writes its candidate; the disk fills meanwhile.
    let release = t.dir.path().join("release-candidate");
    let p = t.paused_at(&["mq", "run"], "mq.candidate.before", Some(&release));
    let filler = fill(&t.root().join("rigs"));
    std::fs::write(&release, "").unwrap();
    let (code, err) = p.finish();
    eprintln!("paused run: exit {code}: {err}");
    t.run(&["mq", "run"]);
    t.run(&["patrol"]);
    eprintln!(
        "after: {:?} df={}",
        mrs(&t, &id),
        String::from_utf8_lossy(
            &std::process::Command::new("df")
                .arg(t.root().join("rigs"))
                .output()
                .unwrap()
                .stdout
        )
    );
    // The host's disk is the host's fault: nothing sent back, no attempt burned.
    let states = mr_states(&t, &id);
    assert!(
        !states.iter().any(|s| s == "failed" || s == "conflict"),
        "the change was blamed for the host's full disk: {:?}",
        mrs(&t, &id)
    );
    assert!(
        events_of(&t, "mr.returned").is_empty(),
        "{:?}",
        mrs(&t, &id)
    );
    assert_eq!(t.bead_status(&id), "done", "{:?}", mrs(&t, &id));
    assert_eq!(attempts(&t, &id), 1);
    assert_eq!(on_remote(&remote, &["rev-parse", "main"]), before);
    // Room again: it lands, once.
    std::fs::remove_file(&filler).unwrap();
    t.patrol_until("merged once there is room", 90, |t| {
        t.run(&["mq", "run"]);
        mr_states(t, &id).last().map(String::as_str) == Some("merged")
    });
    assert_eq!(times_landed(&remote, &format!("work-{id}.txt")), 1);
    assert_eq!(attempts(&t, &id), 1);
    t.doctor_clean();
    drop(disk);
}

#[test]
fn a_full_disk_when_a_done_is_taken_in_loses_nothing_and_burns_no_attempt() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let Some(disk) = SmallDisk::mount(&t.root().join("rigs"), "32m") else {
        return;
    };
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "auto"]);
    let id = t.bead("done onto a full disk");
    t.ok(&["sling", &id]);
    // The agent finished (its done request is in its outbox); nothing took it in yet.
    t.wait_exited(1);
    let filler = fill(&t.root().join("rigs"));
    for _ in 0..3 {
        t.run(&["patrol"]);
    }
    let status = t.bead_status(&id);
    assert!(
        status != "failed" && status != "escalated",
        "the bead was given up for the host's full disk: {status}"
    );
    let d = t.dispatches(&id);
    assert_eq!(d.len(), 1, "re-dispatched for the host's full disk: {d:?}");
    // Room again: the work it did lands, once, from its one dispatch.
    std::fs::remove_file(&filler).unwrap();
    t.patrol_until("done and merged once there is room", 90, |t| {
        t.bead_status(&id) == "done"
            && mr_states(t, &id).last().map(String::as_str) == Some("merged")
    });
    assert_eq!(t.dispatches(&id).len(), 1);
    assert_eq!(times_landed(&remote, &format!("work-{id}.txt")), 1);
    t.doctor_clean();
    drop(disk);
}

/// A remote whose every fetch and push hangs: its `packed-refs` is a fifo nobody
/// writes. Dropped: every reader still blocked is let go, and the fifo removed.
struct HungRemote(std::path::PathBuf);

impl HungRemote {
    fn hang(remote: &std::path::Path) -> HungRemote {
        let main = on_remote(remote, &["rev-parse", "main"]);
        let packed = remote.join("packed-refs");
        let _ = std::fs::remove_file(&packed);
        std::fs::create_dir_all(remote.join("refs/heads")).unwrap();
        std::fs::write(remote.join("refs/heads/main"), format!("{main}\n")).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(&packed)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        HungRemote(packed)
    }

    fn release(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        // O_RDWR on a fifo does not block: readers blocked in open() go on and see EOF.
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc_o_nonblock())
            .open(&self.0)
        {
            let _ = std::fs::remove_file(&self.0);
            std::thread::sleep(Duration::from_millis(200));
            drop(f);
        }
    }
}

fn libc_o_nonblock() -> i32 {
    0o4000
}

impl Drop for HungRemote {
    fn drop(&mut self) {
        self.release();
    }
}

#[test]
fn a_remote_whose_fetch_hangs_is_tried_once_then_backed_off_and_delays_no_other_rigs_landing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("retry_backoff = [\"0s\"]", "push_timeout = \"5s\"");
    // api (first in every pass) has nothing to land; its remote stops answering.
    let api_remote = landing_rig(&t, &scripted_agent(""), &["--merge", "auto"]);
    // web lands its work as it comes.
    let web_remote = landing_rig_named(&t, "web", &scripted_agent(""), &["--merge", "auto"]);
    let hung = HungRemote::hang(&api_remote);
    let w1 = done_bead_of(&t, "web", "first of web");
    t.patrol_until("web's first change merged", 60, |t| {
        mr_states(t, &w1).last().map(String::as_str) == Some("merged")
    });
    // The hung remote was met; from now on, passes do not wait for it.
    let w2 = t
        .ok(&["bead", "create", "--rig", "web", "second of web"])
        .trim()
        .to_string();
    t.ok(&["sling", &w2]);
    t.wait_exited(1);
    let mut slow = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        t.run(&["patrol"]);
        let took = started.elapsed();
        if took >= Duration::from_secs(5) {
            slow.push(took);
        }
    }
    assert!(
        slow.len() <= 1,
        "passes kept waiting push_timeout for api's hung remote: {slow:?}"
    );
    t.patrol_until("web's second change merged", 60, |t| {
        mr_states(t, &w2).last().map(String::as_str) == Some("merged")
    });
    assert_eq!(times_landed(&web_remote, &format!("work-{w2}.txt")), 1);
    drop(hung);
}

#[test]
fn a_remote_moved_away_during_a_landing_blames_nobody_and_the_change_lands_once_it_is_back() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "review"]);
    let id = done_bead(&t, "lands when the remote is back");
    t.ok(&["mq", "approve", &id]);
    // Built and about to push, the remote's directory is renamed away.
    let release = t.dir.path().join("release-push");
    let p = t.paused_at(&["mq", "run"], "mq.pushed.before", Some(&release));
    let moved = remote.with_extension("moved");
    std::fs::rename(&remote, &moved).unwrap();
    std::fs::write(&release, "").unwrap();
    let _ = p.finish();
    t.run(&["mq", "run"]);
    t.run(&["patrol"]);
    let states = mr_states(&t, &id);
    assert!(
        !states.iter().any(|s| s == "failed" || s == "conflict"),
        "{:?}",
        mrs(&t, &id)
    );
    assert_eq!(t.bead_status(&id), "done");
    assert_eq!(attempts(&t, &id), 1);
    assert!(events_of(&t, "mr.returned").is_empty());
    // Back: it lands once.
    std::fs::rename(&moved, &remote).unwrap();
    t.patrol_until("merged once the remote is back", 90, |t| {
        t.run(&["mq", "run"]);
        mr_states(t, &id).last().map(String::as_str) == Some("merged")
    });
    assert_eq!(times_landed(&remote, &format!("work-{id}.txt")), 1);
    t.doctor_clean();
}

#[test]
fn a_rewind_of_the_remote_while_a_landing_is_about_to_push_is_followed_and_never_pushed_back() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "review"]);
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let leaked = done_bead(&t, "leaks a secret");
    t.ok(&["mq", "approve", &leaked]);
    t.ok(&["mq", "run"]);
    assert_eq!(mr_states(&t, &leaked).last().unwrap(), "merged");
    // The next change is built on main with the leak, and about to push.
    let next = done_bead(&t, "independent work");
    t.ok(&["mq", "approve", &next]);
    let release = t.dir.path().join("release-push");
    let p = t.paused_at(&["mq", "run"], "mq.pushed.before", Some(&release));
    // A person rewinds main to drop the leak, just then.
    git(&remote, &["update-ref", "refs/heads/main", &before]);
    std::fs::write(&release, "").unwrap();
    let _ = p.finish();
    for _ in 0..3 {
        t.run(&["mq", "run"]);
        t.run(&["patrol"]);
    }
    // The leak is never pushed back.
    let files = on_remote(&remote, &["ls-tree", "--name-only", "main"]);
    assert!(
        !files.contains(&format!("work-{leaked}.txt")),
        "the rewound change was pushed back: {files}"
    );
    assert_eq!(t.mayor_mail_id("mq-rewound-").len(), 1);
    // The next change never lands twice, whatever becomes of it.
    assert!(times_landed(&remote, &format!("work-{next}.txt")) <= 1);
}

#[test]
fn a_landing_killed_after_its_push_then_its_mr_reset_by_a_rig_switch_lands_once() {
    if !require_docker() {
        return;
    }
    // gt is killed right after its landing push reached the remote; a person then
    // switches the rig to `--merge off` and back to `auto` (the landing goes back to the
    // queue and is built again from the start, on the head that holds it already).
    let t = TestTown::new();
    let remote = landing_rig(
        &t,
        &scripted_agent(""),
        &["--merge", "auto", "--merge-style", "squash"],
    );
    // Recorded while off, so that the landing happens in the killed run.
    t.ok(&["rig", "set", "api", "--merge", "off"]);
    let id = done_bead(&t, "killed after its push");
    t.ok(&["rig", "set", "api", "--merge", "auto"]);
    let out = t
        .cmd()
        .args(["mq", "run"])
        .env("FAILPOINTS", "mq.remote_pushed=panic")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run was not killed");
    let pushed = on_remote(&remote, &["rev-parse", "main"]);
    t.ok(&["rig", "set", "api", "--merge", "off"]);
    t.run(&["patrol"]);
    t.ok(&["rig", "set", "api", "--merge", "auto"]);
    for _ in 0..2 {
        t.run(&["mq", "run"]);
        t.run(&["patrol"]);
    }
    let m = latest_mr(&t, &id);
    assert_eq!(m["state"], "merged", "{m}");
    assert_eq!(
        on_remote(&remote, &["rev-parse", "main"]),
        pushed,
        "landed twice"
    );
    let log = on_remote(&remote, &["log", "--format=%B", "main"]);
    assert_eq!(log.matches(&format!("{id}: work by")).count(), 1, "{log}");
    t.doctor_clean();
}

#[test]
fn retries_that_meet_a_full_disk_open_no_breaker_and_the_bead_finishes_once_there_is_room() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // The agents' mailboxes (assignment, inbox, outbox) on a small disk.
    let Some(disk) = SmallDisk::mount(&t.root().join("agents"), "16m") else {
        return;
    };
    t.configure(
        "retry_backoff = [\"0s\"]\nmax_attempts = 3",
        "breaker_failures = 3",
    );
    landing_rig(&t, &scripted_agent("AGENT_FAIL_GEN=1"), &["--merge", "off"]);
    let id = t.bead("retried onto a full disk");
    t.ok(&["sling", &id]);
    // Its first dispatch fails on its own; then the disk fills before the retry.
    t.wait_exited(1);
    let filler = fill(&t.root().join("agents"));
    // Patrol until two retries met the full disk (or the bead was given up).
    t.patrol_until("two retries to meet the full disk", 60, |t| {
        events_of(t, "sling.undone").len() >= 2
            || ["failed", "escalated"].contains(&t.bead_status(&id).as_str())
    });
    let status = t.bead_status(&id);
    assert!(
        status != "failed" && status != "escalated",
        "the bead was given up for the host's full disk: {status}; {:?}",
        t.dispatches(&id)
    );
    assert!(
        attempts(&t, &id) <= 2,
        "retries that never started burned attempts: {:?}",
        t.dispatches(&id)
    );
    assert!(
        t.mayor_mail_subject("breaker").is_empty(),
        "a full disk opened the town-wide breaker: {:?}\ndispatches: {:?}",
        t.mayor_mail_subject("breaker"),
        t.dispatches(&id)
            .iter()
            .map(|d| d["reason"].to_string())
            .collect::<Vec<_>>()
    );
    // Room again: the retry starts and the bead is done, once.
    std::fs::remove_file(&filler).unwrap();
    t.patrol_until("the bead done once there is room", 90, |t| {
        t.bead_status(&id) == "done"
    });
    t.doctor_clean();
    drop(disk);
}

#[test]
fn a_drain_killed_while_waiting_then_resumed_stops_no_one_at_its_old_deadline() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent("AGENT_HOLD=1"), &[]);
    let id = t.bead("works through a dead drain");
    t.ok(&["sling", &id]);
    wait_for("the agent running", 60, || {
        (t.running_containers().len() == 1).then_some(())
    });
    // The drain is killed (SIGKILL) while it waits; a person resumes the town.
    let mut p = t.paused_at(&["drain", "--timeout", "2s"], "drain.wait", None);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let killed = Instant::now();
    t.ok(&["resume"]);
    // Well past the dead drain's deadline, patrol has stopped nobody.
    t.patrol_until("the dead drain's deadline long past", 60, |_| {
        killed.elapsed() > Duration::from_secs(6)
    });
    assert_eq!(
        t.running_containers().len(),
        1,
        "the dead drain stopped the agent after the resume; {:?}",
        t.dispatches(&id)
    );
    assert_eq!(t.bead_status(&id), "in_progress");
    // Its ask was withdrawn: the agent's inbox holds no drain mail.
    let agent = t.json(&["polecat", "list"])[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let inbox = t.root().join("agents/api").join(&agent).join("box/inbox");
    assert!(inbox.is_dir(), "no inbox at {}", inbox.display());
    let left: Vec<_> = std::fs::read_dir(&inbox)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("drain-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "drain mail left after the resume: {left:?}"
    );
    t.doctor_clean();
}

/// `gt ARGS` on the town at `root` (moved from where the test made it).
fn at(t: &TestTown, root: &std::path::Path, args: &[&str]) -> std::process::Output {
    t.cmd().env("GT_TOWN", root).args(args).output().unwrap()
}

fn json_at(t: &TestTown, root: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = at(t, root, &a);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn a_town_moved_while_a_gate_runs_lands_the_change_once_and_blames_nobody() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // The gate takes a few seconds of work (its duration, not a synchronisation).
    let remote = landing_rig(
        &t,
        &scripted_agent(""),
        &[
            "--merge",
            "auto",
            "--test-command",
            "sleep 4; test -s README",
        ],
    );
    let id = t.bead("gated while the town moves");
    t.ok(&["sling", &id]);
    t.patrol_until("the gate running", 90, |t| {
        let out = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=gt.town={}", t.id),
            "--filter",
            "label=gt.gate",
        ]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    let moved = t.dir.path().join("moved");
    std::fs::rename(t.root(), &moved).unwrap();
    let deadline = Instant::now() + Duration::from_secs(deadline_secs(120));
    loop {
        let p = json_at(&t, &moved, &["patrol"]);
        let list = json_at(&t, &moved, &["mq", "list", "--all"]);
        let last = list
            .as_array()
            .and_then(|l| l.iter().rfind(|m| m["bead"] == id.as_str()).cloned())
            .unwrap_or_default();
        if last["state"] == "merged" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change never landed from the moved town: {last}\nlast pass: {p}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let bead = json_at(&t, &moved, &["bead", "show", &id]);
    assert_eq!(bead["status"], "done", "{bead}");
    assert_eq!(bead["attempts"], 1, "{bead}");
    let log = json_at(&t, &moved, &["log", "-n", "100000"]);
    let returned: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "mr.returned")
        .collect();
    assert!(returned.is_empty(), "{returned:?}");
    assert_eq!(times_landed(&remote, &format!("work-{id}.txt")), 1);
    // Nothing of the gate is left, at the old path or the new.
    let wts = git(
        &moved.join("rigs/api/repo"),
        &["worktree", "list", "--porcelain"],
    );
    assert!(!wts.contains("scratch"), "{wts}");
    let doctor = at(&t, &moved, &["doctor"]);
    assert!(
        doctor.status.success(),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
}

#[test]
fn a_remote_that_hangs_right_after_a_landing_stalls_no_pass_for_ever() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("", "push_timeout = \"5s\"");
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "review"]);
    let id = done_bead(&t, "landed, then its remote hangs");
    t.ok(&["mq", "approve", &id]);
    // Landed and recorded; the remote stops answering before its branch is pruned.
    let release = t.dir.path().join("release-prune");
    let p = t.paused_at(&["mq", "run"], "mq.merged.after", Some(&release));
    let hung = HungRemote::hang(&remote);
    std::fs::write(&release, "").unwrap();
    let started = Instant::now();
    // `finish` fails the test when the run never ends (it asks the hung remote with no
    // deadline: the prune's `git ls-remote --heads`).
    let (_code, err) = p.finish();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run took {:?} after its landing: {err}",
        started.elapsed()
    );
    assert_eq!(mr_states(&t, &id).last().unwrap(), "merged");
    drop(hung);
}

#[test]
fn a_remote_that_refuses_the_done_sagas_branch_push_is_told_once_a_problem_and_lands_after() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("", "push_timeout = \"1s\"");
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "auto"]);
    // The remote declines every polecat branch (a server-side rule on branch names).
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in refs/heads/polecat/*) echo 'branch names are restricted' >&2; exit 1;; esac\ndone\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = t.bead("pushed to a refusing remote");
    t.ok(&["sling", &id]);
    t.patrol_until("the mayor told the push is refused", 90, |t| {
        !t.mayor_mail_subject("push").is_empty()
    });
    for _ in 0..3 {
        t.run(&["patrol"]);
    }
    let told = t.mayor_mail_subject("push");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0]["body"]
            .as_str()
            .unwrap()
            .contains("branch names are restricted"),
        "the mayor is not told why: {told:?}"
    );
    let problems = t.json(&["top", "--once"])["problems"].to_string();
    assert!(
        problems.contains(&id) || problems.contains("push"),
        "gt top shows no problem: {problems}"
    );
    let status = t.bead_status(&id);
    assert!(status != "failed" && status != "escalated", "{status}");
    assert_eq!(t.dispatches(&id).len(), 1);
    // The rule lifted: the work lands, once.
    std::fs::remove_file(&hook).unwrap();
    t.patrol_until("done and merged once the remote accepts", 120, |t| {
        mr_states(t, &id).last().map(String::as_str) == Some("merged")
    });
    assert_eq!(times_landed(&remote, &format!("work-{id}.txt")), 1);
    assert_eq!(t.dispatches(&id).len(), 1);
    t.doctor_clean();
}
