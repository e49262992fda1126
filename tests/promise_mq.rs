//! The merge queue keeps its promise: a landing recognises its own earlier push and work
//! already on the target, a target a person rewound is followed and never re-pushed,
//! review mode holds what was never approved, a refused push is said, and a done with
//! no change is never called a landing.

mod support;

use support::*;

/// `git -C remote ARGS` (a bare repository), stdout.
fn on_remote(remote: &std::path::Path, args: &[&str]) -> String {
    git(remote, args).trim().to_string()
}

/// The latest merge request of `bead`, as `gt mq list --json` shows it.
fn latest_mr(t: &TestTown, bead: &str) -> serde_json::Value {
    t.json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .rfind(|m| m["bead"] == bead)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn latest_state(t: &TestTown, bead: &str) -> String {
    latest_mr(t, bead)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
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

/// A person's clone of the remote, at `dir` (a fresh one).
fn person_clone(remote: &std::path::Path, dir: &std::path::Path) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    git(
        remote.parent().unwrap(),
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
    );
    git(dir, &["config", "user.email", "person@example.com"]);
    git(dir, &["config", "user.name", "A Person"]);
}

/// A person pushes a commit of their own onto the remote's main.
fn person_pushes(remote: &std::path::Path, file: &str) -> String {
    let dir = remote.parent().unwrap().join("person");
    person_clone(remote, &dir);
    std::fs::write(dir.join(file), "a person's change\n").unwrap();
    git(&dir, &["add", file]);
    git(&dir, &["commit", "-q", "-m", "a person's change"]);
    git(&dir, &["push", "-q", "origin", "main"]);
    git(&dir, &["rev-parse", "HEAD"]).trim().to_string()
}

/// Sling a new bead and wait for its work to be done.
fn done_bead(t: &TestTown, title: &str) -> String {
    let id = t.bead(title);
    t.ok(&["sling", &id]);
    t.patrol_until(&format!("{title} done"), 90, |t| {
        t.bead_status(&id) == "done"
    });
    id
}

#[test]
fn a_landing_killed_after_its_push_recognises_it_when_main_moved_on_in_every_style() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // Review mode: each change lands only when the test approves it.
    let remote = landing_rig(&t, &scripted_agent(""), &[]);
    for (i, style) in ["squash", "rebase", "merge"].into_iter().enumerate() {
        t.ok(&["rig", "set", "api", "--merge-style", style]);
        let id = done_bead(&t, &format!("{style} change"));
        t.ok(&["mq", "approve", &id]);
        let mr = latest_mr(&t, &id)["id"].to_string();
        // Killed right after its push reached the remote, before the `pushed` checkpoint.
        let out = t
            .cmd()
            .args(["mq", "run"])
            .env("FAILPOINTS", "mq.remote_pushed=panic")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{style}: the run was not killed");
        let pushed = on_remote(&remote, &["rev-parse", "main"]);
        // Then a person pushes on top of it.
        let theirs = person_pushes(&remote, &format!("theirs-{i}.txt"));
        t.ok(&["mq", "run"]);
        let m = latest_mr(&t, &id);
        assert_eq!(m["state"], "merged", "{style}: {m}");
        // Landed once: the commit it pushed is its commit; nothing of gt's on top of theirs.
        assert_eq!(m["merged_commit"], pushed.as_str(), "{style}: {m}");
        assert_eq!(
            on_remote(&remote, &["rev-parse", "main"]),
            theirs,
            "{style}"
        );
        let log = on_remote(&remote, &["log", "--format=%B", "main"]);
        // The agent's commit (squash: named in the one commit's body) is there once.
        assert_eq!(
            log.matches(&format!("{id}: work by")).count(),
            1,
            "{style}: {log}"
        );
        if style != "rebase" {
            assert_eq!(
                log.matches(&format!("Merge-request: {mr}\n")).count(),
                1,
                "{style}: {log}"
            );
        }
    }
    // Each of the three was recognised as its own push, once.
    assert_eq!(events_of(&t, "mq.push_recognised").len(), 3);
    t.doctor_clean();
}

#[test]
fn a_target_a_person_rewound_is_followed_told_once_and_never_pushed_back() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &[]);
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let leaked = done_bead(&t, "leaks a secret");
    t.ok(&["mq", "approve", &leaked]);
    t.ok(&["mq", "run"]);
    assert_eq!(latest_state(&t, &leaked), "merged");
    let leaked_mr = latest_mr(&t, &leaked)["id"].to_string();
    // Work done on top of it before anyone noticed (its branch holds the leaked commit).
    let stale = done_bead(&t, "built on the leak");
    // A person rewinds the remote's main to drop the leak.
    git(&remote, &["update-ref", "refs/heads/main", &before]);
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    // gt follows the remote: its own main is back too, so new work starts from there.
    let repo = t.root().join("rigs/api/repo");
    assert_eq!(git(&repo, &["rev-parse", "main"]).trim(), before);
    let told = t.mayor_mail_id("mq-rewound-");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0]["body"].as_str().unwrap().contains(&leaked),
        "{told:?}"
    );
    // Doctor names the merged request that is no longer on main.
    let out = t.run(&["doctor"]);
    assert!(!out.status.success(), "doctor stayed clean");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("merge request {leaked_mr} ({leaked})")) && said.contains("rewound"),
        "{said}"
    );
    // The work built on the leak does not bring it back.
    t.ok(&["mq", "approve", &stale]);
    t.ok(&["mq", "run"]);
    assert_ne!(latest_state(&t, &stale), "merged");
    let files = on_remote(&remote, &["ls-tree", "--name-only", "main"]);
    assert!(!files.contains(&format!("work-{leaked}.txt")), "{files}");
    assert_eq!(on_remote(&remote, &["rev-parse", "main"]), before);
    // New work lands on what the person left, without the leak.
    let fresh = done_bead(&t, "fresh work");
    t.ok(&["mq", "approve", &fresh]);
    t.ok(&["mq", "run"]);
    assert_eq!(latest_state(&t, &fresh), "merged");
    let files = on_remote(&remote, &["ls-tree", "--name-only", "main"]);
    assert!(
        files.contains(&format!("work-{fresh}.txt"))
            && !files.contains(&format!("work-{leaked}.txt")),
        "{files}"
    );
    assert_eq!(t.mayor_mail_id("mq-rewound-").len(), 1);
}

#[test]
fn switching_a_rig_to_review_holds_its_recorded_work_for_approval_migrated_towns_too() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "off"]);
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let a = done_bead(&t, "recorded while off");
    assert_eq!(latest_state(&t, &a), "queued");
    // Switching to review puts it before a person.
    let said = t.ok(&["rig", "set", "api", "--merge", "review"]);
    assert!(
        said.contains("1 merge request(s) now wait for review"),
        "{said}"
    );
    assert_eq!(latest_state(&t, &a), "needs-review");
    t.ok(&["mq", "run"]);
    assert_eq!(latest_state(&t, &a), "needs-review");
    assert_eq!(on_remote(&remote, &["rev-parse", "main"]), before);
    // A town whose rig is in review mode with queued work nobody approved (as an older
    // gt left it): the queue holds it too.
    t.ok(&["rig", "set", "api", "--merge", "off"]);
    let b = done_bead(&t, "recorded by an older gt");
    assert_eq!(latest_state(&t, &b), "queued");
    let db = rusqlite::Connection::open(t.root().join(".gt/town.db")).unwrap();
    db.execute("UPDATE rigs SET merge = 'review' WHERE name = 'api'", [])
        .unwrap();
    drop(db);
    t.ok(&["mq", "run"]);
    assert_eq!(latest_state(&t, &b), "needs-review");
    assert_eq!(on_remote(&remote, &["rev-parse", "main"]), before);
    // What a person approves lands.
    t.ok(&["mq", "approve", &a]);
    t.ok(&["mq", "run"]);
    assert_eq!(latest_state(&t, &a), "merged");
    assert_eq!(latest_state(&t, &b), "needs-review");
    t.doctor_clean();
}

#[test]
fn work_a_person_already_squash_merged_by_hand_is_recognised_not_sent_back() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge", "off"]);
    let id = done_bead(&t, "merged by hand");
    let branch = latest_mr(&t, &id)["branch"].as_str().unwrap().to_string();
    // A person squash-merges the pushed branch, then edits the file further.
    let dir = remote.parent().unwrap().join("person");
    person_clone(&remote, &dir);
    git(
        &dir,
        &["merge", "-q", "--squash", &format!("origin/{branch}")],
    );
    git(&dir, &["commit", "-q", "-m", "squashed by hand"]);
    let squashed = git(&dir, &["rev-parse", "HEAD"]).trim().to_string();
    let file = format!("work-{id}.txt");
    std::fs::write(dir.join(&file), "rewritten by a person\n").unwrap();
    git(&dir, &["commit", "-q", "-am", "a person's follow-up"]);
    git(&dir, &["push", "-q", "origin", "main"]);
    let theirs = git(&dir, &["rev-parse", "HEAD"]).trim().to_string();
    t.ok(&["rig", "set", "api", "--merge", "auto"]);
    t.ok(&["mq", "run"]);
    let m = latest_mr(&t, &id);
    assert_eq!(m["state"], "merged", "{m}");
    assert_eq!(m["merged_commit"], squashed.as_str(), "{m}");
    // Not reopened, nothing pushed.
    assert_eq!(t.bead_status(&id), "done");
    assert_eq!(t.dispatches(&id).len(), 1);
    assert_eq!(on_remote(&remote, &["rev-parse", "main"]), theirs);
    assert!(events_of(&t, "mr.returned").is_empty());
    t.doctor_clean();
}

#[test]
fn a_remote_that_refuses_the_landing_push_is_said_mailed_once_and_a_problem() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &[]);
    // A protected main: the pre-receive hook declines it; branches are welcome.
    let hook = remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ]; then echo 'main is protected' >&2; exit 1; fi\ndone\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let id = done_bead(&t, "refused");
    t.ok(&["mq", "approve", &id]);
    let mr = latest_mr(&t, &id)["id"].to_string();
    t.ok(&["mq", "run"]);
    t.ok(&["patrol"]);
    t.ok(&["mq", "run"]);
    assert_eq!(on_remote(&remote, &["rev-parse", "main"]), before);
    // Why, once, to the mayor.
    let told = t.mayor_mail_id("mq-refused-");
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0]["body"]
            .as_str()
            .unwrap()
            .contains("main is protected"),
        "{told:?}"
    );
    // A problem in gt top, with what to do; doctor says so.
    let top = t.json(&["top", "--once"]);
    let problems = top["problems"].to_string();
    assert!(
        problems.contains(&format!("merge request {mr} ({id})")) && problems.contains("refused"),
        "{problems}"
    );
    let out = t.run(&["doctor"]);
    assert!(!out.status.success(), "doctor stayed clean");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("refused"), "{said}");
    // The rule lifted: the next pass lands it, and the problem is gone.
    std::fs::remove_file(&hook).unwrap();
    t.ok(&["mq", "run"]);
    assert_eq!(latest_state(&t, &id), "merged");
    let problems = t.json(&["top", "--once"])["problems"].to_string();
    assert!(!problems.contains("refused"), "{problems}");
    t.doctor_clean();
}

#[test]
fn a_done_with_no_change_is_its_own_outcome_never_a_landing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, "gt done -m 'nothing to change'", &["--merge", "auto"]);
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let id = t.bead("nothing to do");
    let cv = t.ok(&["convoy", "create", "empty", &id]).trim().to_string();
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    t.ok(&["patrol"]);
    t.ok(&["mq", "run"]);
    let m = latest_mr(&t, &id);
    assert_ne!(m["state"], "merged", "{m}");
    assert!(m["why"].as_str().unwrap().contains("no change"), "{m}");
    assert!(events_of(&t, "mr.merged").is_empty());
    assert_eq!(on_remote(&remote, &["rev-parse", "main"]), before);
    // The mayor is told it changed nothing.
    let told = t.mayor_mail_subject("no change");
    assert_eq!(told.len(), 1, "{:?}", t.mayor_mail());
    // Its convoy has nothing on its way (not `merging` for ever), and never shows it merged.
    let c = t.json(&["convoy", "status", &cv]);
    assert_eq!(c["state"], "landed", "{c}");
    assert_eq!(c["merged"], 0, "{c}");
    t.doctor_clean();
}
