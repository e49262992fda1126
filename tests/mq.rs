//! The merge queue's review side: `gt diff` and `gt mq show` on real finished work.

mod support;

use support::*;

#[test]
fn a_finished_beads_work_can_be_reviewed_as_a_diff_and_a_merge_request() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent(""), &[]);
    let id = t.bead("review me");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    let file = format!("work-{id}.txt");
    // The unified diff against the merge base with main.
    let diff = t.ok(&["diff", &id]);
    assert!(diff.contains(&format!("+++ b/{file}")), "{diff}");
    assert!(diff.contains("+work by api/"), "{diff}");
    // Files with their line counts.
    let stat = t.ok(&["diff", &id, "--stat"]);
    assert!(stat.contains(&format!("{file} | +1 -0")), "{stat}");
    assert!(stat.contains("1 file(s) changed, +1 -0"), "{stat}");
    // The merge request, by its id and by its bead.
    let mr = t.json(&["mq", "list", "--all"])[0].clone();
    let mr_id = mr["id"].to_string();
    let shown = t.json(&["mq", "show", &mr_id]);
    assert_eq!(shown["bead"], id.as_str(), "{shown}");
    assert_eq!(shown["bead_status"], "done", "{shown}");
    assert_eq!(shown["change"]["commit"], mr["commit"], "{shown}");
    let subjects = shown["change"]["commits"].to_string();
    assert!(subjects.contains(&format!("{id}: work by")), "{shown}");
    assert_eq!(
        shown["change"]["files"][0]["path"],
        file.as_str(),
        "{shown}"
    );
    let text = t.ok(&["mq", "show", &id]);
    assert!(
        text.contains(&format!("merge request {mr_id}: bead {id} (done)")),
        "{text}"
    );
    assert_eq!(t.json(&["diff", &mr_id])["commit"], mr["commit"]);
    // On a terminal (a pty from `script`): coloured, through the pager; piped: plain.
    let on_tty = |env: &[(&str, &str)]| {
        let cmd = format!("{} diff {id}", gt_bin().display());
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("GT_TOWN", t.root())
            .env_remove("NO_COLOR")
            .env("GT_PAGER", "sed s/^/paged:/");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = on_tty(&[]);
    assert!(shown.contains("paged:\u{1b}[32m+work by api/"), "{shown:?}");
    let shown = on_tty(&[("NO_COLOR", "1")]);
    assert!(
        shown.contains("paged:+work by api/") && !shown.contains('\u{1b}'),
        "{shown:?}"
    );
    assert!(!diff.contains('\u{1b}'), "piped output is plain: {diff:?}");
    // Unknown: exit 4.
    t.fails(&["diff", "api-nope"], 4);
    t.fails(&["mq", "show", "999"], 4);
}

/// `git -C remote ARGS` (a bare repository), stdout.
fn on_remote(remote: &std::path::Path, args: &[&str]) -> String {
    git(remote, args).trim().to_string()
}

fn mr_states(t: &TestTown, bead: &str) -> Vec<String> {
    t.json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["bead"] == bead)
        .map(|m| m["state"].as_str().unwrap().to_string())
        .collect()
}

fn latest_state(t: &TestTown, bead: &str) -> String {
    mr_states(t, bead).last().cloned().unwrap_or_default()
}

fn scratch_is_empty(t: &TestTown) -> bool {
    let d = t.root().join("scratch/api");
    std::fs::read_dir(&d)
        .map(|mut e| e.next().is_none())
        .unwrap_or(true)
}

#[test]
fn two_beads_on_different_files_both_land_on_the_remotes_main_squashed() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(
        &t,
        &scripted_agent(""),
        &[
            "--merge",
            "auto",
            "--merge-style",
            "squash",
            "--test-command",
            "test -f README && ls work-*.txt",
        ],
    );
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let a = t.bead("first change");
    let b = t.bead("second change");
    t.ok(&["sling", &a]);
    t.ok(&["sling", &b]);
    t.patrol_until("both merge requests merged", 120, |t| {
        latest_state(t, &a) == "merged" && latest_state(t, &b) == "merged"
    });
    // Both files on the remote's main, each change one squashed commit on top.
    for id in [&a, &b] {
        let content = on_remote(&remote, &["show", &format!("main:work-{id}.txt")]);
        assert!(content.starts_with("work by api/"), "{content}");
    }
    assert_eq!(
        on_remote(
            &remote,
            &["rev-list", "--count", &format!("{before}..main")]
        ),
        "2"
    );
    assert_eq!(
        on_remote(&remote, &["rev-list", "--merges", "--count", "main"]),
        "0"
    );
    let log = on_remote(&remote, &["log", "--format=%B", "main"]);
    assert!(log.contains(&format!("{a}: first change")), "{log}");
    assert!(log.contains("Merge-request: "), "{log}");
    // Each merged request names the commit that carries it, which is on the remote.
    for m in t
        .json(&["mq", "list", "--all", "--state", "merged"])
        .as_array()
        .unwrap()
    {
        let c = m["merged_commit"].as_str().unwrap();
        git(&remote, &["merge-base", "--is-ancestor", c, "main"]);
        // The agent's branch is pruned: its work is on the remote.
        assert!(m["pruned_at"].is_i64(), "{m}");
    }
    // The gate ran on each candidate (its output kept), and left no scratch checkout.
    let shown = t.json(&["mq", "show", &a]);
    let kinds: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    for k in [
        "mr.recorded",
        "mr.picked",
        "mr.candidate",
        "mr.gate_started",
        "mr.gate_ended",
        "mr.pushed",
        "mr.merged",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert!(scratch_is_empty(&t));
    // The local target follows: new work starts from what landed.
    let local = git(&t.root().join("rigs/api/repo"), &["rev-parse", "main"]);
    assert_eq!(local.trim(), on_remote(&remote, &["rev-parse", "main"]));
    t.doctor_clean();
}

#[test]
fn a_conflicting_change_is_sent_back_with_its_files_rebased_by_the_agent_and_landed() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(
        &t,
        &scripted_agent("AGENT_FILE=shared.txt AGENT_REBASE=1"),
        &["--merge", "auto", "--merge-style", "rebase"],
    );
    let a = t.bead("one side");
    let b = t.bead("other side");
    // Both start from the same main and add the same file with different content.
    t.ok(&["sling", &a]);
    t.ok(&["sling", &b]);
    t.patrol_until("both merged", 180, |t| {
        latest_state(t, &a) == "merged" && latest_state(t, &b) == "merged"
    });
    // Exactly one of them conflicted first; its first merge request says which file.
    let (sent_back, first) = if mr_states(&t, &a).len() > 1 {
        (&b, &a)
    } else {
        (&a, &b)
    };
    let (sent_back, landed_first) = if mr_states(&t, sent_back).len() > 1 {
        (sent_back, first)
    } else {
        (first, sent_back)
    };
    assert_eq!(mr_states(&t, landed_first), vec!["merged"]);
    assert_eq!(mr_states(&t, sent_back), vec!["conflict", "merged"]);
    let conflicted = &t.json(&["mq", "list", "--all", "--state", "conflict"])[0];
    assert!(
        conflicted["reason"]
            .as_str()
            .unwrap()
            .contains("shared.txt"),
        "{conflicted}"
    );
    // The second attempt was told why (its prime), and rebased onto main.
    let out = t.ok(&["peek", "--bead", sent_back, "--attempt", "2"]);
    assert!(out.contains("sent back from the merge queue"), "{out}");
    assert!(out.contains("shared.txt"), "{out}");
    // main is linear (rebase style) and holds the second one's side of the file.
    assert_eq!(
        on_remote(&remote, &["rev-list", "--merges", "--count", "main"]),
        "0"
    );
    let content = on_remote(&remote, &["show", "main:shared.txt"]);
    let dispatches = t.dispatches(sent_back);
    let last_agent = dispatches.last().unwrap()["agent"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        content.contains(&format!("work by {last_agent}")),
        "{content}"
    );
    assert!(t.bead_status(sent_back) == "done");
    t.doctor_clean();
}

#[test]
fn a_change_that_breaks_the_gate_goes_back_with_the_gates_output_and_lands_fixed() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let gate = "if [ -e broken.txt ]; then echo 'GATE SAYS: broken.txt must go'; exit 1; fi";
    let remote = landing_rig(
        &t,
        &scripted_agent("AGENT_BREAK_ATTEMPT=1"),
        &["--merge", "auto", "--test-command", gate],
    );
    let id = t.bead("breaks, then fixes");
    t.ok(&["sling", &id]);
    t.patrol_until("merged on the second attempt", 180, |t| {
        latest_state(t, &id) == "merged"
    });
    assert_eq!(mr_states(&t, &id), vec!["failed", "merged"]);
    let failed = &t.json(&["mq", "list", "--all", "--state", "failed"])[0];
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("GATE SAYS: broken.txt must go"), "{reason}");
    // The failing candidate was retried once (a flaky gate passes the second time),
    // then the target alone passed: the change was to blame.
    let shown = t.json(&["mq", "show", &failed["id"].to_string()]);
    let runs: Vec<String> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "mr.gate_started")
        .map(|h| h["data"]["on"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(runs, vec!["candidate", "candidate", "target"]);
    let out = t.ok(&["peek", "--bead", &id, "--attempt", "2"]);
    assert!(out.contains("GATE SAYS: broken.txt must go"), "{out}");
    assert!(
        on_remote(&remote, &["ls-tree", "--name-only", "main"])
            .lines()
            .all(|f| f != "broken.txt")
    );
    assert_eq!(t.json(&["bead", "show", &id])["attempts"], 2);
    assert!(scratch_is_empty(&t));
    t.doctor_clean();
}

#[test]
fn a_target_that_fails_its_gate_alone_is_escalated_once_and_blocks_nothing_of_the_change() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let gate = "if [ -e broken.txt ]; then echo 'main is broken'; exit 1; fi";
    let remote = {
        let src = t.source_repo("api");
        std::fs::write(src.join("broken.txt"), "broken on main\n").unwrap();
        git(&src, &["add", "broken.txt"]);
        git(&src, &["commit", "-q", "-m", "main is broken"]);
        let remote = t.root().parent().unwrap().join("remote.git");
        git(
            t.root().parent().unwrap(),
            &[
                "clone",
                "-q",
                "--bare",
                src.to_str().unwrap(),
                remote.to_str().unwrap(),
            ],
        );
        let image = test_image();
        let cmd = scripted_agent("");
        t.ok(&[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--image",
            &image,
            "--command",
            &cmd,
            "--remote",
            remote.to_str().unwrap(),
            "--merge",
            "auto",
            "--test-command",
            gate,
        ]);
        remote
    };
    let id = t.bead("innocent");
    t.ok(&["sling", &id]);
    t.patrol_until("the broken target escalated", 120, |t| {
        !t.mayor_mail_subject("fails its gate").is_empty()
    });
    // More passes: no more gate runs, no more mail, the change is not blamed.
    let gate_runs = |t: &TestTown| {
        t.json(&["log", "-n", "100000"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "mr.gate_started")
            .count()
    };
    let runs = gate_runs(&t);
    for _ in 0..3 {
        t.ok(&["mq", "run"]);
    }
    assert_eq!(gate_runs(&t), runs);
    assert_eq!(t.mayor_mail_subject("fails its gate").len(), 1);
    assert_eq!(mr_states(&t, &id), vec!["queued"]);
    assert_eq!(t.bead_status(&id), "done");
    let listed = t.ok(&["mq", "list", "--all"]);
    assert!(listed.contains("fails its gate"), "{listed}");
    // A person fixes main on the remote: the queue goes on and the change lands.
    let fix = t.root().parent().unwrap().join("fix");
    git(
        t.root().parent().unwrap(),
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            fix.to_str().unwrap(),
        ],
    );
    git(&fix, &["rm", "-q", "broken.txt"]);
    git(&fix, &["commit", "-q", "-m", "fix main"]);
    git(&fix, &["push", "-q", "origin", "main"]);
    t.ok(&["mq", "run"]);
    assert_eq!(mr_states(&t, &id), vec!["merged"]);
    let files = on_remote(&remote, &["ls-tree", "--name-only", "main"]);
    assert!(
        files.contains(&format!("work-{id}.txt")) && !files.contains("broken.txt"),
        "{files}"
    );
    t.doctor_clean();
}

#[test]
fn review_mode_waits_for_approval_and_a_rejection_reopens_the_bead_with_the_reason() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // No --merge: a new rig's work waits for review.
    let remote = landing_rig(&t, &scripted_agent(""), &[]);
    assert_eq!(t.json(&["rig", "show", "api"])["merge"], "review");
    let a = t.bead("approve me");
    let b = t.bead("reject me");
    let cv = t
        .ok(&["convoy", "create", "pair", &a, &b])
        .trim()
        .to_string();
    t.ok(&["sling", &a]);
    t.ok(&["sling", &b]);
    t.patrol_until("both done", 90, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    t.ok(&["patrol"]);
    assert_eq!(latest_state(&t, &a), "needs-review");
    assert_eq!(latest_state(&t, &b), "needs-review");
    // Done, not merged: the convoy says both, and has not landed.
    let v = t.json(&["convoy", "status", &cv]);
    assert_eq!(
        (
            v["done"].as_u64(),
            v["merged"].as_u64(),
            v["state"].as_str()
        ),
        (Some(2), Some(0), Some("open")),
        "{v}"
    );
    let waits = t.ok(&["mq", "list", "--all", "--state", "needs-review"]);
    assert!(waits.contains("waits for review"), "{waits}");
    // Approve one: it lands; the other still waits.
    t.ok(&["mq", "approve", &a]);
    t.ok(&["mq", "run"]);
    assert_eq!(latest_state(&t, &a), "merged");
    assert_eq!(latest_state(&t, &b), "needs-review");
    assert!(
        on_remote(&remote, &["ls-tree", "--name-only", "main"]).contains(&format!("work-{a}.txt"))
    );
    // Reject the other: reopened, dispatched again with the reason in its prime.
    t.fails(&["mq", "reject", &b, "-m", "  "], 2);
    t.ok(&["mq", "reject", &b, "-m", "please add a test for it"]);
    assert_eq!(mr_states(&t, &b), vec!["rejected"]);
    t.patrol_until("the rejected bead done again", 90, |t| {
        latest_state(t, &b) == "needs-review"
    });
    let out = t.ok(&["peek", "--bead", &b, "--attempt", "2"]);
    assert!(out.contains("please add a test for it"), "{out}");
    t.fails(&["mq", "approve", &mr_id_of(&t, &b, "rejected")], 3);
    t.ok(&["mq", "approve", &b]);
    t.ok(&["mq", "run"]);
    let v = t.json(&["convoy", "status", &cv]);
    assert_eq!(
        (v["merged"].as_u64(), v["state"].as_str()),
        (Some(2), Some("landed")),
        "{v}"
    );
    t.doctor_clean();
}

fn mr_id_of(t: &TestTown, bead: &str, state: &str) -> String {
    t.json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["bead"] == bead && m["state"] == state)
        .map(|m| m["id"].to_string())
        .unwrap()
}

#[test]
fn a_remote_that_moves_during_landing_requeues_the_change_which_lands_on_the_new_head() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    // Review mode: it lands only when this test says so.
    let remote = landing_rig(&t, &scripted_agent(""), &["--merge-style", "merge"]);
    let id = t.bead("raced");
    t.ok(&["sling", &id]);
    t.patrol_until("done, waiting for review", 90, |t| {
        t.bead_status(&id) == "done"
    });
    t.ok(&["mq", "approve", &id]);
    let release = t.root().join("release");
    let paused = t.paused_at(&["mq", "run"], "mq.pushed.before", Some(&release));
    // Someone pushes to main meanwhile.
    let other = t.root().parent().unwrap().join("other");
    git(
        t.root().parent().unwrap(),
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
    );
    std::fs::write(other.join("theirs.txt"), "pushed meanwhile\n").unwrap();
    git(&other, &["add", "theirs.txt"]);
    git(&other, &["commit", "-q", "-m", "someone else"]);
    git(&other, &["push", "-q", "origin", "main"]);
    std::fs::write(&release, "").unwrap();
    let (code, err) = paused.finish();
    assert_eq!(code, 0, "{err}");
    let moved = t
        .json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "mq.remote_moved")
        .count();
    assert_eq!(moved, 1);
    // Queued again at its place, built on the new head, landed in the same run.
    assert_eq!(latest_state(&t, &id), "merged");
    let files = on_remote(&remote, &["ls-tree", "--name-only", "main"]);
    assert!(
        files.contains("theirs.txt") && files.contains(&format!("work-{id}.txt")),
        "{files}"
    );
    git(
        &remote,
        &[
            "merge-base",
            "--is-ancestor",
            &on_remote(&other, &["rev-parse", "HEAD"]),
            "main",
        ],
    );
    t.doctor_clean();
}

#[test]
fn landing_killed_at_every_step_converges_each_change_landed_once_oldest_first() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &["--test-command", "true"]);
    // Crash points in landing order; each kills `gt mq run` while it lands one change.
    let points = [
        "mq.picked.after",
        "mq.candidate.after",
        "mq.gate.after",
        "mq.pushed.before",
        "mq.remote_pushed",
        "mq.pushed.after",
        "mq.advanced.after",
        "mq.merged.after",
    ];
    // Two more to show the order: approved newest first, they land oldest first.
    let ids: Vec<String> = (0..points.len() + 2)
        .map(|i| t.bead(&format!("change {i}")))
        .collect();
    for id in &ids {
        t.ok(&["sling", id]);
    }
    t.patrol_until("every bead done", 180, |t| {
        ids.iter().all(|id| t.bead_status(id) == "done")
    });
    let recorded: Vec<String> = t
        .json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["bead"].as_str().unwrap().to_string())
        .collect();
    for (i, fp) in points.iter().enumerate() {
        let landing = &recorded[i];
        t.ok(&["mq", "approve", landing]);
        let out = t
            .cmd()
            .args(["mq", "run"])
            .env("FAILPOINTS", format!("{fp}=panic"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{fp}: the run was not killed");
        // The next run finishes what the killed one started, and nothing twice.
        t.ok(&["mq", "run"]);
        assert_eq!(latest_state(&t, landing), "merged", "{fp}");
        let mr = &t.json(&["mq", "show", landing]);
        let trailer = format!("Merge-request: {}", mr["id"]);
        let log = on_remote(&remote, &["log", "--format=%B", "main"]);
        assert_eq!(log.matches(&trailer).count(), 1, "{fp}: {log}");
        assert!(scratch_is_empty(&t), "{fp}: a scratch checkout is left");
        for other in &recorded[i + 1..] {
            assert_eq!(latest_state(&t, other), "needs-review", "{fp}");
        }
    }
    let last_two = &recorded[points.len()..];
    t.ok(&["mq", "approve", &last_two[1]]);
    t.ok(&["mq", "approve", &last_two[0]]);
    t.ok(&["mq", "run"]);
    let merged_order: Vec<String> = t
        .json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "mr.merged")
        .map(|e| e["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(merged_order, recorded);
    assert_eq!(
        on_remote(&remote, &["rev-list", "--merges", "--count", "main"]),
        recorded.len().to_string()
    );
    t.doctor_clean();
}
