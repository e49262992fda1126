//! Issue 4: the agent protocol on real Docker and git: the done saga and its crash
//! points, resume context, idempotent mail, and request security.

mod support;

use support::*;

fn assert_done_once(t: &TestTown, bead: &str, remote: &std::path::Path) {
    let b = t.json(&["bead", "show", bead]);
    assert_eq!(b["status"], "done", "{b}");
    let mrs = t.json(&["mq", "list", "--all"]);
    let mine: Vec<_> = mrs
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["bead"] == bead)
        .collect();
    assert_eq!(mine.len(), 1, "{mrs}");
    let branch = mine[0]["branch"].as_str().unwrap();
    let on_remote = git(remote, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(on_remote.trim(), mine[0]["commit"].as_str().unwrap());
    let done_mail: Vec<_> = t
        .mayor_mail()
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{bead} done"))
        })
        .collect();
    assert_eq!(done_mail.len(), 1, "{done_mail:?}");
    t.doctor_clean();
}

#[test]
fn the_happy_path_ends_done_pushed_recorded_and_released() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(&scripted_agent(""), &[]);
    let id = t.bead("happy");
    let slung = t.json(&["sling", &id]);
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    t.wait_exited(1);
    // `gt status` ingests the done request; the saga is patrol's. Meanwhile the agent
    // is finishing, and a nuke would abandon the hand-over: refused without --force.
    t.ok(&["status"]);
    let pl = t.json(&["polecat", "list"]);
    assert_eq!(pl[0]["state"], "finishing");
    assert_eq!(
        pl[0]["why"],
        "handing its work over (done saga at: requested)"
    );
    let err = t.fails(&["polecat", "nuke", &agent], 3);
    assert!(err.contains("finishing"), "{err}");
    let out = t.ok(&["patrol"]);
    assert!(out.contains(&format!("done: {id}")), "{out}");
    assert_done_once(&t, &id, &remote);
    assert_eq!(t.all_containers(), 0);
    let wt = t.worktree(&agent);
    assert!(!wt.exists(), "the worktree stayed");
    let pl = t.json(&["polecat", "list"]);
    assert_eq!(pl[0]["state"], "idle");
    assert_eq!(
        t.json(&["status"])["mayor_unread"],
        1,
        "the done notice waits for the mayor"
    );
    // The agent's checkpoint was recorded against its dispatch.
    let log = t.json(&["log"]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "checkpoint")
    );
    // A second patrol changes nothing of it.
    t.ok(&["patrol"]);
    assert_done_once(&t, &id, &remote);
}

fn crash_at(fp: &str) {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(&scripted_agent(""), &[]);
    let id = t.bead("crashy");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    let out = t
        .cmd()
        .arg("patrol")
        .env("FAILPOINTS", format!("{fp}=panic"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{fp}: the patrol should have died: {out:?}"
    );
    // The killed patrol's lease does not block the next one: its holder is dead.
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert_done_once(&t, &id, &remote);
    assert_eq!(t.all_containers(), 0, "{fp}");
}

macro_rules! crash_tests {
    ($($name:ident => $fp:literal),* $(,)?) => {$(
        #[test]
        fn $name() {
            crash_at($fp);
        }
    )*};
}

crash_tests! {
    killed_after_ingest_commit_converges => "ingest.after_commit",
    killed_before_verified_converges => "saga.verified.before",
    killed_after_verified_converges => "saga.verified.after",
    killed_before_push_converges => "saga.pushed.before",
    killed_after_push_converges => "saga.pushed.after",
    killed_before_release_converges => "saga.released.before",
    killed_after_container_removed_converges => "saga.container_removed.after",
}

#[test]
fn a_remote_unreachable_for_two_passes_escalates_once_then_lands() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(&scripted_agent(""), &[]);
    let id = t.bead("push later");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    let aside = t.dir.path().join("remote-away.git");
    std::fs::rename(&remote, &aside).unwrap();
    for _ in 0..2 {
        let out = t.ok(&["patrol"]);
        assert!(out.contains("done pending"), "{out}");
        assert_eq!(t.json(&["bead", "show", &id])["status"], "in_progress");
    }
    let escalations: Vec<_> = t.mayor_mail_id("push-failed-");
    assert_eq!(escalations.len(), 1);
    std::fs::rename(&aside, &remote).unwrap();
    t.ok(&["patrol"]);
    assert_done_once(&t, &id, &remote);
}

#[test]
fn a_dead_agent_that_pushed_resumes_with_its_history_and_lands_once() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(&scripted_agent("AGENT_FAIL_GEN=1"), &[]);
    let id = t.bead("resume me");
    let slung = t.json(&["sling", &id]);
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    let branch = slung[0]["branch"].as_str().unwrap().to_string();
    t.wait_exited(1);
    // "The agent pushed its branch itself" before its container died.
    let repo = t.root().join("rigs/api/repo");
    git(
        &repo,
        &[
            "push",
            "-q",
            remote.to_str().unwrap(),
            &format!("{branch}:refs/heads/{branch}"),
        ],
    );
    let out = t.ok(&["patrol"]);
    assert!(
        out.contains("died:") && out.contains("re-dispatched"),
        "{out}"
    );
    wait_for("the second attempt to finish", 60, || {
        let logs = t.ok(&["peek", &agent]);
        logs.contains("the host takes it from here").then_some(())
    });
    let logs = t.ok(&["peek", &agent]);
    assert!(logs.contains("Earlier attempts"), "{logs}");
    assert!(logs.contains("exited with code 1"), "{logs}");
    assert!(
        logs.contains("checkpoint") && logs.contains(&format!("committed work-{id}.txt")),
        "{logs}"
    );
    t.wait_exited(1);
    t.ok(&["patrol"]);
    assert_done_once(&t, &id, &remote);
    assert_eq!(t.json(&["bead", "show", &id])["attempts"], 2);
}

#[test]
fn mail_with_one_id_from_five_processes_is_one_message() {
    let t = TestTown::new();
    let children: Vec<_> = (0..5)
        .map(|i| {
            std::process::Command::new(gt_bin())
                .args([
                    "mail",
                    "send",
                    "mayor",
                    "-s",
                    "hello",
                    "-m",
                    &format!("from {i}"),
                    "--id",
                    "greeting-1",
                ])
                .env("GT_TOWN", t.root())
                .env_remove("GT_AGENT")
                .output()
                .unwrap()
        })
        .collect();
    assert!(children.iter().all(|o| o.status.success()), "{children:?}");
    let inbox = t.mayor_mail();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["id"], "greeting-1");
    t.ok(&["mail", "read", "greeting-1"]);
    t.ok(&["mail", "read", "greeting-1"]);
    assert!(
        t.json(&["mail", "inbox", "--unread"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    t.fails(&["mail", "send", "nobody/here", "-s", "x", "-m", "y"], 4);
    t.fails(
        &[
            "mail", "send", "mayor", "-s", "x", "-m", "y", "--id", "../etc",
        ],
        2,
    );
    t.fails(&["mail", "read", "no-such-mail"], 4);
}

#[test]
fn a_crash_between_inbox_file_and_delivered_mark_delivers_once() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote("sleep 60", &[]);
    let id = t.bead("listen");
    let slung = t.json(&["sling", &id]);
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    let out = t
        .cmd()
        .args([
            "mail", "send", &agent, "-s", "news", "-m", "body", "--id", "news-1",
        ])
        .env("FAILPOINTS", "mail.after_file=panic")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let inbox = t
        .root()
        .join("agents/api")
        .join(polecat_name(&agent))
        .join("box/inbox");
    assert!(inbox.join("news-1.json").exists());
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    let files: Vec<_> = std::fs::read_dir(&inbox).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let m = t.json(&["mail", "inbox", "--as", &agent]);
    assert_eq!(m.as_array().unwrap().len(), 1);
    assert!(!m[0]["delivered"].is_null());
    let delivered = t
        .json(&["log"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "mail.delivered")
        .count();
    assert_eq!(delivered, 1);
}

#[test]
fn forged_stale_and_malformed_requests_are_rejected_and_change_nothing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote("sleep 60", &["--max-polecats", "2"]);
    let a = t.bead("a");
    let b = t.bead("b");
    t.ok(&["sling", &a]);
    t.ok(&["sling", &b]);
    let pl = t.json(&["polecat", "list"]);
    let names: Vec<String> = pl
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mbox = |n: &str| t.root().join("agents/api").join(n);
    let assignment = |n: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(mbox(n).join("box/assignment.json")).unwrap())
            .unwrap()
    };
    let (aa, ab) = (assignment(&names[0]), assignment(&names[1]));
    let write = |n: &str, file: &str, body: &[u8]| {
        std::fs::write(mbox(n).join("outbox").join(file), body).unwrap()
    };
    let done = |agent: &serde_json::Value, generation: i64, token: &str, id: &str| {
        serde_json::to_vec(&serde_json::json!({
            "id": id, "agent": agent["agent"], "generation": generation, "token": token,
            "created_at": 1, "kind": "done", "status": "completed", "note": "forged", "head": null
        }))
        .unwrap()
    };
    let g = aa["generation"].as_i64().unwrap();
    // In A's outbox: B's name; A's name with B's token; an older generation; junk.
    write(
        &names[0],
        "r1.json",
        &done(
            &ab,
            ab["generation"].as_i64().unwrap(),
            ab["token"].as_str().unwrap(),
            "r1",
        ),
    );
    write(
        &names[0],
        "r2.json",
        &done(&aa, g, ab["token"].as_str().unwrap(), "r2"),
    );
    write(
        &names[0],
        "r3.json",
        &done(&aa, g - 1, aa["token"].as_str().unwrap(), "r3"),
    );
    write(&names[0], "r4.json", b"{ not json");
    write(&names[0], "r5.json", &vec![b' '; 1 << 21]);
    let big = serde_json::json!({
        "id": "r6", "agent": aa["agent"], "generation": g, "token": aa["token"], "created_at": 1,
        "kind": "mail", "to": "mayor", "subject": "big", "body": "x".repeat(70 << 10), "mail_id": null
    });
    write(&names[0], "r6.json", &serde_json::to_vec(&big).unwrap());
    let unknown = serde_json::json!({ "id": "r7", "agent": aa["agent"], "generation": g, "token": aa["token"], "created_at": 1, "kind": "launch_missiles" });
    write(&names[0], "r7.json", &serde_json::to_vec(&unknown).unwrap());
    let out = t.json(&["patrol"]);
    assert_eq!(out["rejected"], 7, "{out}");
    assert_eq!(out["ingested"], 0, "{out}");
    for bead in [&a, &b] {
        assert_eq!(t.json(&["bead", "show", bead])["status"], "in_progress");
    }
    assert!(t.mayor_mail().is_empty());
    let rejected = std::fs::read_dir(mbox(&names[0]).join("rejected"))
        .unwrap()
        .count();
    assert_eq!(rejected, 7);
    let events = t.json(&["log"]);
    assert_eq!(
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "request.rejected")
            .count(),
        7
    );
    t.doctor_clean();
}

#[test]
fn agent_mode_commands_refuse_to_run_on_the_host() {
    let t = TestTown::new();
    for cmd in [
        &["prime"][..],
        &["hook"],
        &["checkpoint", "-m", "x"],
        &["done"],
        &["escalate", "-m", "x"],
    ] {
        let err = t.fails(cmd, 2);
        assert!(err.contains("inside an agent container"), "{err}");
    }
}

#[test]
fn an_agent_sends_reads_and_escalates_through_its_mailbox() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let cmd = "gt mail send mayor -s hello -m 'from inside' --id agent-hello
        until [ -f /gt/inbox/ping.json ]; do sleep 0.1; done
        gt mail inbox --unread
        gt mail read ping
        gt escalate -s 'need a key' -m 'the API key is missing'
        sleep 300";
    t.rig_with_remote(cmd, &[]);
    let id = t.bead("talk");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    // An id the agent chose lives in its namespace (rig.polecat.id): it cannot squat
    // a system notice's id.
    let hello_id = format!("{}.agent-hello", agent.replace('/', "."));
    wait_for("the agent's hello", 30, || {
        t.ok(&["patrol"]);
        t.mayor_mail()
            .into_iter()
            .find(|m| m["id"] == hello_id.as_str())
    });
    t.ok(&[
        "mail",
        "send",
        &agent,
        "-s",
        "ping",
        "-m",
        "are you there",
        "--id",
        "ping",
    ]);
    wait_for("the escalation", 30, || {
        t.ok(&["patrol"]);
        t.mayor_mail()
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap().contains("need a key"))
    });
    let hello = t.json(&["mail", "read", &hello_id]);
    assert_eq!(hello["from"], agent.as_str());
    assert_eq!(hello["body"], "from inside");
    let ping = t.json(&["mail", "inbox", "--as", &agent]);
    assert!(
        !ping[0]["read"].is_null(),
        "the agent's read reached the host: {ping}"
    );
    let logs = t.ok(&["peek", &agent]);
    assert!(
        logs.contains("ping") && logs.contains("are you there"),
        "{logs}"
    );
}

#[test]
fn done_with_a_status_sets_the_beads_status() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        "echo half > half.txt; gt done --status deferred -m 'needs a decision'",
        &["--max-polecats", "2"],
    );
    let id = t.bead("maybe later");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    t.ok(&["patrol"]);
    assert_eq!(t.bead_status(&id), "deferred");
    // The uncommitted file was committed at done, never dropped.
    let mr = &t.json(&["mq", "list", "--all"])[0];
    let files = git(
        &t.root().join("rigs/api/repo"),
        &[
            "show",
            "--name-only",
            "--format=%s",
            mr["commit"].as_str().unwrap(),
        ],
    );
    assert!(
        files.contains("gt: uncommitted work at done") && files.contains("half.txt"),
        "{files}"
    );
    let mail = t.mayor_mail();
    assert!(
        mail.iter()
            .any(|m| m["subject"].as_str().unwrap().contains("deferred")),
        "{mail:?}"
    );
    t.doctor_clean();
}

#[test]
fn bead_show_tells_the_saga_steps_and_a_stuck_saga_escalates_once() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent(""), &["--max-polecats", "2"]);
    let (ok, stuck) = (t.bead("lands"), t.bead("gets stuck"));
    t.ok(&["sling", &ok]);
    let s = t.json(&["sling", &stuck]);
    t.wait_exited(2);
    // The stuck bead's branch disappears before its hand-over is verified.
    let wt = t.worktree(s[0]["agent"].as_str().unwrap());
    let repo = t.root().join("rigs/api/repo");
    std::fs::remove_dir_all(&wt).unwrap();
    git(&repo, &["worktree", "prune"]);
    git(&repo, &["branch", "-D", s[0]["branch"].as_str().unwrap()]);
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    let steps: Vec<String> = t.json(&["bead", "show", &ok])["dispatches"][0]["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        steps,
        [
            "note",
            "requested",
            "verified",
            "pushed",
            "recorded",
            "closed",
            "notified",
            "released"
        ]
    );
    assert_eq!(t.bead_status(&stuck), "in_progress");
    let escalations: Vec<_> = t.mayor_mail_id("saga-stuck-");
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    assert!(
        escalations[0]["body"].as_str().unwrap().contains("is gone"),
        "{escalations:?}"
    );
    let text = t.ok(&["bead", "show", &stuck]);
    assert!(
        text.contains("checkpoint: committed") && text.contains("done saga: requested"),
        "{text}"
    );
}

#[test]
fn prune_deletes_only_branches_whose_work_is_safe_on_the_remote() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(
        &scripted_agent(""),
        &["--max-polecats", "2", "--merge", "off"],
    );
    let (a, b) = (t.bead("pushed"), t.bead("lost upstream"));
    t.ok(&["sling", &a, &b]);
    t.patrol_until("both done", 60, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    let branch = |id: &str| {
        t.json(&["bead", "show", id])["branch"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ba, bb) = (branch(&a), branch(&b));
    // Someone deletes b's branch on the remote: its only copy is now the local one.
    git(&remote, &["branch", "-D", &bb]);
    let repo = t.root().join("rigs/api/repo");
    let has = |br: &str| {
        std::process::Command::new("git")
            .current_dir(&repo)
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{br}"),
            ])
            .status()
            .unwrap()
            .success()
    };

    let dry = t.json(&["rig", "prune", "--dry-run"]);
    let row = |v: &serde_json::Value, id: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["bead"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {id}: {v}"))
    };
    assert_eq!(row(&dry, &a)["action"], "would prune", "{dry}");
    assert_eq!(row(&dry, &b)["action"], "kept", "{dry}");
    assert!(has(&ba) && has(&bb), "a dry run deletes nothing");

    // Killed between recording and deleting: nothing is wrong, the next prune finishes.
    let out = t
        .cmd()
        .args(["rig", "prune"])
        .env("FAILPOINTS", "prune.after_record=panic")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the fail point should have killed it"
    );
    assert!(has(&ba), "killed before deleting");
    t.doctor_clean();
    let done = t.json(&["rig", "prune", "api"]);
    assert_eq!(row(&done, &a)["action"], "pruned", "{done}");
    assert!(
        row(&done, &a)["why"]
            .as_str()
            .unwrap()
            .contains("same commit"),
        "{done}"
    );
    assert_eq!(row(&done, &b)["action"], "kept", "{done}");
    assert!(
        row(&done, &b)["why"]
            .as_str()
            .unwrap()
            .contains("would lose work"),
        "{done}"
    );
    assert!(!has(&ba), "the safe branch is gone");
    assert!(has(&bb), "the only copy of b's work stays");
    // Said in the log with the commit; the merge request knows; doctor is content.
    let commit = row(&done, &a)["commit"].as_str().unwrap().to_string();
    let log = t.json(&["log", "--subject", &a]);
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "branch.pruned" && e["data"]["commit"] == commit.as_str()),
        "{log}"
    );
    let mrs = t.json(&["mq", "list", "--all"]);
    let mr = mrs
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["bead"] == a.as_str())
        .unwrap();
    assert!(mr["pruned_at"].is_i64(), "{mr}");
    t.doctor_clean();
    // Nothing left to do for a: a second prune only reports b again.
    let again = t.json(&["rig", "prune"]);
    assert_eq!(again.as_array().unwrap().len(), 1, "{again}");
    // A remote that cannot be asked keeps the branch and says why; the command succeeds.
    t.ok(&["rig", "set", "api", "--remote", "/nonexistent/remote.git"]);
    let unreachable = t.json(&["rig", "prune"]);
    assert_eq!(row(&unreachable, &b)["action"], "kept", "{unreachable}");
    assert!(
        row(&unreachable, &b)["why"]
            .as_str()
            .unwrap()
            .contains("cannot ask"),
        "{unreachable}"
    );
    assert!(has(&bb));
    // Unknown rig: exit 4.
    t.fails(&["rig", "prune", "nope"], 4);
}

#[test]
fn an_agent_that_lingers_after_done_is_stopped_and_its_late_writes_are_kept() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(&scripted_agent("AGENT_LINGER=1"), &[]);
    let id = t.bead("linger");
    t.ok(&["sling", &id]);
    let wt = t.worktree(t.json(&["polecat", "list"])[0]["name"].as_str().unwrap());
    wait_for("the agent to write after done", 30, || {
        wt.join("late.txt").exists().then_some(())
    });
    // A hand-over that takes a while (a slow push): the agent would keep writing.
    let out = t
        .cmd()
        .args(["patrol"])
        .env("FAILPOINTS", "saga.pushed.before=sleep(1000)")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(t.bead_status(&id), "done");
    // Stopped; the host commits nothing in an agent's worktree: what it wrote after
    // `gt done` is not in the recorded commit, and the worktree is kept with it.
    assert!(t.running_containers().is_empty());
    assert!(wt.join("late.txt").exists(), "the late writes are kept");
    let mr = t.json(&["mq", "list", "--all"])[0].clone();
    let files = git(
        &remote,
        &["ls-tree", "--name-only", mr["commit"].as_str().unwrap()],
    );
    assert!(!files.lines().any(|f| f == "late.txt"), "{files}");
    assert_done_once(&t, &id, &remote);
}
