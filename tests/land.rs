//! Landed work reaches the user's own repository: a rig added from a local git
//! repository without --remote gets its landed target fast-forwarded there, by git's own
//! rule for a checked-out branch, and builds on the user's own commits.

mod support;

use std::path::{Path, PathBuf};
use support::*;

/// Rig `api` from a fresh local repository (no --remote), landing after review; returns
/// the source's path.
fn local_rig(t: &TestTown, extra: &[&str]) -> PathBuf {
    let src = t.source_repo("api");
    local_rig_at(t, &src, &scripted_agent(""), extra);
    src
}

fn mr_of(t: &TestTown, bead: &str) -> serde_json::Value {
    t.json(&["mq", "show", bead])
}

fn head(dir: &Path, rev: &str) -> String {
    git(dir, &["rev-parse", rev]).trim().to_string()
}

fn clone_head(t: &TestTown) -> String {
    head(&t.root().join("rigs/api/repo"), "refs/heads/main")
}

#[test]
fn landed_work_reaches_the_users_checked_out_clean_main_and_its_work_tree() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t, &[]);
    let shown = t.json(&["rig", "show", "api"]);
    assert_eq!(shown["lands_into"]["kind"], "source", "{shown}");
    assert_eq!(shown["lands_into"]["branch"], "main", "{shown}");
    let text = t.ok(&["rig", "show", "api"]);
    assert!(
        text.contains(&format!("your repository {}, branch main", src.display())),
        "{text}"
    );
    let id = land_one(&t, "a change");
    t.patrol_until("main delivered into the source", 30, |t| {
        head(&src, "main") == clone_head(t)
    });
    // Its work tree has the change (checked out, clean: updated in place) and is clean.
    let file = src.join(format!("work-{id}.txt"));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("work by api/"),
        "{}",
        file.display()
    );
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
    // No agent branch in the user's repository.
    assert_eq!(
        git(&src, &["branch", "--list", "polecat/*"]).trim(),
        "",
        "agents' branches stay out of the user's repository"
    );
    t.doctor_clean();
}

#[test]
fn a_dirty_work_tree_is_never_touched_the_user_is_told_once_and_the_next_landing_delivers() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t, &[]);
    let before = head(&src, "main");
    std::fs::write(src.join("README"), "my own edit\n").unwrap();
    let id = land_one(&t, "a change");
    // A couple more passes: still nothing of the user's touched, still one mail.
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert_eq!(head(&src, "main"), before, "the user's main did not move");
    assert_eq!(
        std::fs::read_to_string(src.join("README")).unwrap(),
        "my own edit\n"
    );
    assert!(!src.join(format!("work-{id}.txt")).exists());
    let clone = t.root().join("rigs/api/repo");
    let command = format!(
        "git -C {} pull --ff-only {} main",
        src.display(),
        clone.display()
    );
    let mails = t.mayor_mail_id("land-source-api-");
    assert_eq!(mails.len(), 1, "{mails:?}");
    let body = mails[0]["body"].as_str().unwrap();
    assert!(body.contains(&command), "{body}");
    // `gt mq show` and the default `gt mq list` say where the work is, and the command.
    let shown = t.ok(&["mq", "show", &id]);
    assert!(shown.contains(&command), "{shown}");
    let listed = t.ok(&["mq", "list"]);
    assert!(listed.contains("not in your repository"), "{listed}");
    // The command works as told (the user's edit stays).
    let out = std::process::Command::new("sh")
        .args(["-c", &command])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(
        std::fs::read_to_string(src.join("README")).unwrap(),
        "my own edit\n"
    );
    t.ok(&["patrol"]);
    let shown = t.ok(&["mq", "show", &id]);
    assert!(!shown.contains("not in your repository"), "{shown}");
    // Cleaned up: the next landing is delivered by itself.
    git(&src, &["checkout", "--", "README"]);
    let next = land_one(&t, "another change");
    t.patrol_until("the second change delivered", 30, |t| {
        head(&src, "main") == clone_head(t)
    });
    assert!(src.join(format!("work-{next}.txt")).exists());
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
}

#[test]
fn a_commit_the_user_made_on_main_meanwhile_is_what_the_change_lands_on() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t, &[]);
    let id = t.bead("a change");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    std::fs::write(src.join("mine.txt"), "the user's own\n").unwrap();
    git(&src, &["add", "mine.txt"]);
    git(&src, &["commit", "-q", "-m", "the user's own commit"]);
    let mine = head(&src, "main");
    t.ok(&["mq", "approve", &id]);
    t.patrol_until("merged", 90, |t| mr_state(t, &id) == "merged");
    t.patrol_until("delivered", 30, |t| head(&src, "main") == clone_head(t));
    // Both are on the user's main: their commit is an ancestor of the landed one.
    let out = std::process::Command::new("git")
        .current_dir(&src)
        .args(["merge-base", "--is-ancestor", &mine, "main"])
        .status()
        .unwrap();
    assert!(out.success(), "the user's commit stays on their main");
    assert!(src.join("mine.txt").exists());
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
}

#[test]
fn a_source_on_another_branch_and_a_bare_source_get_main_moved_without_a_work_tree() {
    if !require_docker() {
        return;
    }
    // Another branch checked out: main moves, the work tree (on `topic`) stays.
    let t = TestTown::new();
    let src = local_rig(&t, &[]);
    git(&src, &["checkout", "-q", "-b", "topic"]);
    let id = land_one(&t, "a change");
    t.patrol_until("delivered", 30, |t| head(&src, "main") == clone_head(t));
    assert_eq!(git(&src, &["branch", "--show-current"]).trim(), "topic");
    assert!(!src.join(format!("work-{id}.txt")).exists());
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
    drop(t);

    // A bare source.
    let t = TestTown::new();
    let work = t.source_repo("work");
    let bare = t.dir.path().join("api.git");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&work)
        .arg(&bare)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let image = test_image();
    let command = scripted_agent("");
    t.ok(&[
        "rig",
        "add",
        "api",
        bare.to_str().unwrap(),
        "--image",
        &image,
        "--command",
        &command,
        "--memory",
        "256m",
    ]);
    land_one(&t, "a change");
    t.patrol_until("delivered into the bare source", 30, |t| {
        head(&bare, "main") == clone_head(t)
    });
}

#[test]
fn a_rig_opted_out_leaves_the_source_untouched() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t, &[]);
    let set = t.ok(&["rig", "set", "api", "--land-into-source", "off"]);
    assert!(set.contains("land into source on → off"), "{set}");
    let shown = t.json(&["rig", "show", "api"]);
    assert_eq!(shown["lands_into"]["kind"], "clone", "{shown}");
    let text = t.ok(&["rig", "show", "api"]);
    assert!(text.contains("only the town's clone"), "{text}");
    let before = head(&src, "main");
    land_one(&t, "a change");
    t.ok(&["patrol"]);
    assert_ne!(clone_head(&t), before, "landed in the town's clone");
    assert_eq!(head(&src, "main"), before, "the source is untouched");
    assert!(t.mayor_mail_id("land-source-").is_empty());
}

/// The remote's `polecat/*` branches, with their commits.
fn remote_polecat_branches(remote: &Path) -> Vec<(String, String)> {
    git(
        remote,
        &[
            "for-each-ref",
            "--format=%(refname:short) %(objectname)",
            "refs/heads/polecat/",
        ],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(b, c)| (b.to_string(), c.to_string()))
    .collect()
}

#[test]
fn a_merged_polecat_branch_is_deleted_from_the_remote_unless_a_person_pushed_to_it() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge-style", "squash"]);
    // Merged: its remote branch goes (squashed: the branch's commit is not on main, its
    // merge is).
    let a = land_one(&t, "first");
    t.patrol_until("its remote branch deleted", 30, |_| {
        remote_polecat_branches(&remote).is_empty()
    });
    let pruned = t.ok(&["log", "-n", "200"]);
    assert!(pruned.contains("branch.remote_pruned"), "{pruned}");
    // A person pushed onto the agent's remote branch before it merged: kept.
    let b = t.bead("second");
    t.ok(&["sling", &b]);
    t.patrol_until("done", 90, |t| t.bead_status(&b) == "done");
    let (branch, _) = remote_polecat_branches(&remote)
        .into_iter()
        .find(|(br, _)| br.ends_with(&b))
        .expect("the second branch on the remote");
    let person = t.dir.path().join("person");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "-b", &branch])
        .arg(&remote)
        .arg(&person)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(person.join("extra.txt"), "a person's work\n").unwrap();
    git(&person, &["add", "extra.txt"]);
    git(
        &person,
        &[
            "-c",
            "user.name=p",
            "-c",
            "user.email=p@x",
            "commit",
            "-q",
            "-m",
            "mine",
        ],
    );
    git(&person, &["push", "-q", "origin", &branch]);
    let theirs = head(&person, "HEAD");
    t.ok(&["mq", "approve", &b]);
    t.patrol_until("merged", 90, |t| mr_state(t, &b) == "merged");
    t.ok(&["patrol"]);
    assert!(
        remote_polecat_branches(&remote).contains(&(branch.clone(), theirs.clone())),
        "a person's push is never deleted"
    );
    // An older merged branch left on the remote (as gt before this change did): found by
    // `gt rig prune --remote`, a dry run first.
    let a_mr = mr_of(&t, &a);
    let a_branch = a_mr["branch"].as_str().unwrap().to_string();
    let a_commit = a_mr["commit"].as_str().unwrap().to_string();
    git(
        &t.root().join("rigs/api/repo"),
        &[
            "push",
            "-q",
            remote.to_str().unwrap(),
            &format!("{a_commit}:refs/heads/{a_branch}"),
        ],
    );
    let dry = t.json(&["rig", "prune", "--remote", "--dry-run"]);
    let row = |rows: &serde_json::Value, br: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["branch"] == br)
            .cloned()
            .unwrap_or_else(|| panic!("{br} not in {rows}"))
    };
    assert_eq!(row(&dry, &a_branch)["action"], "would delete", "{dry}");
    assert_eq!(row(&dry, &branch)["action"], "kept", "{dry}");
    assert!(
        row(&dry, &branch)["why"]
            .as_str()
            .unwrap()
            .contains("pushed"),
        "{dry}"
    );
    assert_eq!(remote_polecat_branches(&remote).len(), 2);
    let text = t.ok(&["rig", "prune", "--remote"]);
    assert!(
        text.contains(&a_branch) && text.contains("deleted"),
        "{text}"
    );
    assert_eq!(remote_polecat_branches(&remote), vec![(branch, theirs)]);
}

#[test]
fn rig_set_command_prints_the_changed_lines_not_both_whole_scripts() {
    let t = TestTown::new();
    let old = "set -eu\necho one\necho two\necho three\ngt done";
    let new = "set -eu\necho one\necho TWO\necho three\necho four\ngt done";
    let src = t.source_repo("api");
    t.ok(&["rig", "add", "api", src.to_str().unwrap(), "--command", old]);
    let out = t.ok(&["rig", "set", "api", "--command", new]);
    assert!(out.contains("command changed (5 lines → 6 lines)"), "{out}");
    assert!(
        out.contains("- echo two") && out.contains("+ echo TWO"),
        "{out}"
    );
    assert!(out.contains("+ echo four"), "{out}");
    assert!(
        !out.contains("echo three"),
        "unchanged lines are not printed: {out}"
    );
    // --json: the rig holds the exact new command.
    let j = t.json(&["rig", "set", "api", "--command", old]);
    assert_eq!(j["rig"]["command"], old, "{j}");
    // A short one-line command still reads as before.
    t.ok(&["rig", "set", "api", "--command", "my-agent run"]);
    let out = t.ok(&["rig", "set", "api", "--command", "my-agent go"]);
    assert!(out.contains("command my-agent run → my-agent go"), "{out}");
}

#[test]
fn rig_add_of_a_path_that_does_not_exist_says_so() {
    let t = TestTown::new();
    let missing = t.dir.path().join("nowhere");
    let err = t.fails(&["rig", "add", "x", missing.to_str().unwrap()], 4);
    assert!(
        err.contains("not found") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains("not a git repository"), "{err}");
    assert!(err.contains("hint"), "{err}");
    // An existing directory that is no repository keeps its own message.
    let plain = t.dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let err = t.fails(&["rig", "add", "x", plain.to_str().unwrap()], 2);
    assert!(err.contains("not a git repository"), "{err}");
    t.fails(&["rig", "show", "x"], 4);
}

#[test]
fn mq_list_shows_the_live_queue_and_all_shows_the_history() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    local_rig(&t, &[]);
    let landed = land_one(&t, "landed");
    let waiting = t.bead("waits for review");
    t.ok(&["sling", &waiting]);
    t.patrol_until("done", 90, |t| t.bead_status(&waiting) == "done");
    let beads = |args: &[&str]| -> Vec<String> {
        t.json(args)
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["bead"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(beads(&["mq", "list"]), vec![waiting.clone()]);
    assert_eq!(
        beads(&["mq", "list", "--all"]),
        vec![landed.clone(), waiting]
    );
    assert_eq!(beads(&["mq", "list", "--state", "merged"]), vec![landed]);
}

#[test]
fn a_merge_request_out_of_attempts_does_not_invite_another_done() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1", "");
    local_rig(
        &t,
        &["--merge", "auto", "--test-command", "test ! -e broken.txt"],
    );
    // Break the gate in attempt 1, which is its last.
    t.ok(&[
        "rig",
        "set",
        "api",
        "--command",
        &scripted_agent("AGENT_BREAK_ATTEMPT=1"),
    ]);
    let id = t.bead("breaks the gate");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead failed", 120, |t| t.bead_status(&id) == "failed");
    let shown = mr_of(&t, &id);
    assert_eq!(shown["state"], "failed", "{shown}");
    let reason = shown["reason"].as_str().unwrap();
    assert!(reason.contains("out of attempts"), "{reason}");
    assert!(!reason.contains("`gt done` again"), "{reason}");
    assert!(reason.contains("gt bead reopen"), "{reason}");
    // A given-up merge request needs a person: in the live queue.
    let live = t.json(&["mq", "list"]);
    assert_eq!(live.as_array().unwrap().len(), 1, "{live}");
}

#[test]
fn a_remote_that_cannot_be_asked_after_a_merge_gets_its_branch_deleted_on_a_later_pass() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &[]);
    let id = t.bead("a change");
    t.ok(&["sling", &id]);
    t.patrol_until("done", 90, |t| t.bead_status(&id) == "done");
    t.ok(&["mq", "approve", &id]);
    // Merged; then the remote is gone before its branch can be deleted.
    let release = t.dir.path().join("release");
    let p = t.paused_at(&["mq", "run"], "mq.merged.after", Some(&release));
    let aside = t.dir.path().join("remote-aside.git");
    std::fs::rename(&remote, &aside).unwrap();
    std::fs::write(&release, "").unwrap();
    let (code, err) = p.finish();
    assert_eq!(code, 0, "a remote that cannot be asked fails no run: {err}");
    assert_eq!(mr_state(&t, &id), "merged");
    t.ok(&["patrol"]);
    // Back: the next pass deletes it, by itself.
    std::fs::rename(&aside, &remote).unwrap();
    assert_eq!(remote_polecat_branches(&remote).len(), 1);
    t.patrol_until("the branch deleted on a later pass", 30, |_| {
        remote_polecat_branches(&remote).is_empty()
    });
}
