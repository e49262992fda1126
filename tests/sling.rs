//! Issue 3: sling on a real Docker engine with real git worktrees.

mod support;

use std::path::Path;
use support::*;

fn town_with_rig(command: &str, extra: &[&str]) -> TestTown {
    let t = TestTown::new();
    let mut args = vec!["--memory", "256m", "--cpus", "0.5"];
    args.extend_from_slice(extra);
    t.rig(command, &args);
    t
}

fn bead(t: &TestTown, title: &str) -> String {
    t.ok(&["bead", "create", "--rig", "api", title])
        .trim()
        .to_string()
}

fn branch_log(repo: &Path, branch: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .current_dir(repo)
        .args(["log", "--format=%s", branch])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_slung_bead_runs_in_a_locked_down_container_that_can_commit_on_its_branch() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig(
        "echo agent-says-hi; echo work > work.txt && git add work.txt && git commit -qm 'agent work' && sleep 60",
        &["--pids", "256", "--network", "none"],
    );
    let id = bead(&t, "do work");
    let slung = t.json(&["sling", &id]);
    assert_eq!(slung[0]["outcome"], "dispatched");
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    let branch = format!("polecat/{}/{id}", polecat_name(&agent));
    assert_eq!(slung[0]["branch"], branch.as_str());

    let cs = containers(&t);
    assert_eq!(cs.len(), 1);
    let c = &cs[0];
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["gt.town"], t.id.as_str());
    assert_eq!(labels["gt.rig"], "api");
    assert_eq!(labels["gt.agent"], polecat_name(&agent));
    assert_eq!(labels["gt.generation"], "1");
    assert_eq!(
        c["Name"],
        format!("/gt-{}-api-{}", t.id, polecat_name(&agent)).as_str()
    );
    let hc = &c["HostConfig"];
    assert_eq!(hc["Memory"], 256i64 << 20);
    assert_eq!(hc["NanoCpus"], 500_000_000i64);
    assert_eq!(hc["PidsLimit"], 256);
    assert_eq!(hc["NetworkMode"], "none");
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]));
    assert!(hc["SecurityOpt"].to_string().contains("no-new-privileges"));
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let gid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-g")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // Never uid 0 inside: as root, gt runs agents as a dedicated unprivileged uid.
    let user = if uid.trim() == "0" {
        "10001:10001".to_string()
    } else {
        format!("{}:{}", uid.trim(), gid.trim())
    };
    assert_eq!(c["Config"]["User"], user.as_str());
    assert_eq!(hc["ReadonlyRootfs"], true);
    assert_eq!(hc["LogConfig"]["Config"]["max-size"], "4900k");
    assert_eq!(hc["LogConfig"]["Config"]["max-file"], "2");
    // Structured bind mounts (a path with `:` or `,` stays one path).
    let mounts = hc["Mounts"].as_array().cloned().unwrap_or_default();
    let mount = |target: &str| {
        mounts
            .iter()
            .find(|m| m["Target"] == target)
            .unwrap_or_else(|| panic!("no mount at {target}: {mounts:?}"))
            .clone()
    };
    let wt = t.worktree(&agent);
    let git_dir = t.root().join("rigs/api/repo/.git");
    for (src, target, ro) in [
        (wt.display().to_string(), wt.display().to_string(), false),
        // Where the rig's git dir is, the agent's private one (its refs, config, locks);
        // the rig's objects and hooks over it, read-only.
        (
            t.root()
                .join("agents/api")
                .join(polecat_name(&agent))
                .join("git/common")
                .display()
                .to_string(),
            git_dir.display().to_string(),
            false,
        ),
        (
            git_dir.join("objects").display().to_string(),
            git_dir.join("objects").display().to_string(),
            true,
        ),
        (String::new(), "/gt".to_string(), true),
        (String::new(), "/gt/outbox".to_string(), false),
        (String::new(), "/usr/local/bin/gt".to_string(), true),
    ] {
        let m = mount(&target);
        assert_eq!(m["Type"], "bind", "{m}");
        if !src.is_empty() {
            assert_eq!(m["Source"], src.as_str(), "{m}");
        }
        assert_eq!(m["ReadOnly"].as_bool().unwrap_or(false), ro, "{m}");
    }
    assert!(hc["Binds"].is_null() || hc["Binds"].as_array().is_some_and(|b| b.is_empty()));
    assert!(
        !serde_json::Value::Array(mounts.clone())
            .to_string()
            .contains("docker.sock")
    );

    // The agent commits on its own branch, in its private git state: the rig's
    // repository does not move until the host imports the work.
    let repo = t.root().join("rigs/api/repo");
    wait_for("the agent's commit", 30, || {
        agent_branch_log(&t.root(), "api", polecat_name(&agent), &branch)
            .filter(|l| l.contains("agent work"))
    });
    assert!(!branch_log(&repo, &branch).unwrap().contains("agent work"));
    let peek = t.ok(&["peek", &agent]);
    assert!(peek.contains("agent-says-hi"), "{peek}");
    let b = t.json(&["bead", "show", &id]);
    assert_eq!(b["status"], "in_progress");
    assert_eq!(b["agent"], agent.as_str());
    let pl = t.json(&["polecat", "list"]);
    assert_eq!(pl[0]["state"], "running");
    assert_eq!(pl[0]["generation"], 1);
}

#[test]
fn eight_processes_slinging_one_bead_make_exactly_one_container() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 60", &["--max-polecats", "8"]);
    let id = bead(&t, "contested");
    let children: Vec<_> = (0..8).map(|_| t.spawn(&["sling", &id], &[])).collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "{outs:?}");
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert_eq!(o.status.code(), Some(3), "{o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("already hooked"),
            "{o:?}"
        );
    }
    assert_eq!(containers(&t).len(), 1);
    let pl = t.json(&["polecat", "list"]);
    let live: Vec<_> = pl
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "running")
        .collect();
    assert_eq!(live.len(), 1);
}

#[test]
fn a_second_bead_asking_for_the_same_branch_is_rejected_without_leftovers() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 60", &[]);
    let a = bead(&t, "first");
    let b = bead(&t, "second");
    t.ok(&["sling", &a, "--branch", "feature/shared"]);
    let err = t.fails(
        &[
            "sling",
            &b,
            "--branch",
            "feature/shared",
            "--polecat",
            "slit",
        ],
        3,
    );
    assert!(err.contains("feature/shared"), "{err}");
    assert_eq!(containers(&t).len(), 1);
    assert!(!t.root().join("rigs/api/polecats/slit").exists());
    assert_eq!(t.json(&["bead", "show", &b])["status"], "open");
    // An existing branch that no agent holds is refused too: never reused silently.
    let repo = t.root().join("rigs/api/repo");
    git(&repo, &["branch", "taken"]);
    let err = t.fails(&["sling", &b, "--branch", "taken"], 3);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(t.json(&["bead", "show", &b])["status"], "open");
}

#[test]
fn a_stopped_agent_gets_the_stop_signal_and_its_ending_is_recorded() {
    if !require_docker() {
        return;
    }
    // The command traps SIGTERM: `gt agent run` (its supervisor) must neither swallow
    // the signal nor die of it before the command has ended.
    let t = town_with_rig(
        "trap 'echo stopped > /gt/outbox/stopped; exit 3' TERM; echo ready > /gt/outbox/ready; while :; do sleep 0.2; done",
        &[],
    );
    let id = bead(&t, "work");
    let slung = t.json(&["sling", &id]);
    let name = polecat_name(slung[0]["agent"].as_str().unwrap()).to_string();
    let mailbox = t.root().join("agents/api").join(&name).join("outbox");
    wait_for("the agent to start", 30, || {
        mailbox.join("ready").exists().then_some(())
    });
    let container = slung[0]["container"].as_str().unwrap().to_string();
    let out = docker(&["stop", "-t", "30", &container]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        mailbox.join("stopped").exists(),
        "the command never saw SIGTERM"
    );
    let ending: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mailbox.join("ending")).unwrap()).unwrap();
    assert_eq!(ending["generation"], 1);
    assert_eq!(ending["exit_code"], 3, "{ending}");
    assert_eq!(ending["oom"], false);
    // Even with the container removed by hand, patrol knows how the agent ended.
    assert!(docker(&["rm", &container]).status.success());
    let p = t.json(&["patrol"]);
    assert_eq!(p["deaths"][0]["exit_code"], 3, "{p}");
    assert_eq!(
        p["deaths"][0]["reason"], "exited with code 3 without done",
        "{p}"
    );
}

#[test]
fn a_container_of_an_older_generation_exits_without_running_the_agent() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 60", &[]);
    let id = bead(&t, "work");
    let slung = t.json(&["sling", &id]);
    let name = polecat_name(slung[0]["agent"].as_str().unwrap()).to_string();
    let mailbox = t.root().join("agents/api").join(&name);
    let wt = t.root().join("rigs/api/polecats").join(&name);
    let out = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/gt", mailbox.join("box").display()),
        "-v",
        &format!("{0}:{0}", wt.display()),
        "-v",
        &format!("{}:/usr/local/bin/gt:ro", gt_bin().display()),
        "-e",
        "GT_GENERATION=0",
        "--label",
        &format!("gt.town={}", t.id),
        &test_image(),
        "gt",
        "agent",
        "run",
        "--",
        "sh",
        "-c",
        &format!("touch {}/RAN", wt.display()),
    ]);
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stale container"),
        "{out:?}"
    );
    assert!(!wt.join("RAN").exists(), "a stale container ran the agent");
}

#[test]
fn sling_with_docker_unreachable_exits_5_and_changes_nothing() {
    let t = town_with_rig("sleep 60", &[]);
    let id = bead(&t, "work");
    let events = t.event_count();
    let out = t
        .cmd()
        .args(["sling", &id])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("DOCKER_HOST"));
    assert_eq!(t.json(&["bead", "show", &id])["status"], "open");
    assert!(t.json(&["polecat", "list"]).as_array().unwrap().is_empty());
    assert_eq!(t.event_count(), events);
}

#[test]
fn a_missing_image_is_named_and_the_bead_goes_back_to_open() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.source_repo("api");
    t.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        "gt-no-such-image:never",
        "--command",
        "true",
    ]);
    let id = bead(&t, "work");
    let err = t.fails(&["sling", &id], 1);
    assert!(err.contains("gt-no-such-image:never"), "{err}");
    let b = t.json(&["bead", "show", &id]);
    assert_eq!(b["status"], "open");
    assert!(b["branch"].is_null());
    let pl = t.json(&["polecat", "list"]);
    assert!(
        pl.as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "idle" && p["bead"].is_null()),
        "{pl}"
    );
    assert!(containers(&t).is_empty());
    let repo = t.root().join("rigs/api/repo");
    assert!(
        !git(&repo, &["branch", "--list"]).contains("polecat/"),
        "the branch stayed"
    );
    assert!(
        std::fs::read_dir(t.root().join("rigs/api/polecats"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    );
}

#[test]
fn a_missing_network_is_named_and_the_bead_goes_back_to_open() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig("true", &["--network", "gt-no-such-network"]);
    let id = bead(&t, "work");
    let err = t.fails(&["sling", &id], 1);
    assert!(err.contains("gt-no-such-network"), "{err}");
    assert_eq!(t.bead_status(&id), "open");
    assert!(containers(&t).is_empty());
}

#[test]
fn bad_sling_input_is_reported_with_its_exit_code() {
    let t = town_with_rig("sleep 60", &[]);
    let err = t.fails(&["sling", "api-zzz"], 4);
    assert!(err.contains("bead api-zzz not found"), "{err}");
    t.fails(&["sling", "Bad/Id"], 2);
    let id = bead(&t, "closed one");
    t.ok(&["bead", "close", &id]);
    if require_docker() {
        let err = t.fails(&["sling", &id], 2);
        assert!(err.contains("cancelled"), "{err}");
        t.fails(&["sling", &id, "--branch", "bad..name"], 2);
    }
    let src = t.source_repo("web");
    let err = t.fails(
        &["rig", "add", "web", src.to_str().unwrap(), "--command", " "],
        2,
    );
    assert!(err.contains("--command is empty"), "{err}");
}

#[test]
fn a_full_rig_queues_the_bead_and_says_so() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 60", &["--max-polecats", "1"]);
    let a = bead(&t, "first");
    let b = bead(&t, "second");
    t.ok(&["sling", &a]);
    let out = t.json(&["sling", &b]);
    assert_eq!(out[0]["outcome"], "queued");
    let shown = t.json(&["bead", "show", &b]);
    assert_eq!(shown["status"], "open");
    assert_eq!(shown["queued"], true);
    assert_eq!(t.json(&["status"])["rigs"][0]["queued"], 1);
    assert_eq!(containers(&t).len(), 1);
}

#[test]
fn many_beads_are_slung_at_once() {
    if !require_docker() {
        return;
    }
    // Twelve at once: more than the 8 dispatch threads, all in one repository (libgit2's
    // worktree add races with itself without gt's repository lock).
    let t = town_with_rig("sleep 60", &["--max-polecats", "12"]);
    let ids: Vec<String> = (0..12).map(|i| bead(&t, &format!("task {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    let out = t.ok(&args);
    assert_eq!(out.lines().count(), 12, "{out}");
    assert_eq!(containers(&t).len(), 12);
    let names: std::collections::HashSet<_> = t
        .json(&["polecat", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 12);
}

#[test]
fn nuke_returns_the_bead_keeps_the_branch_and_keeps_a_dirty_worktree_unless_forced() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 60", &[]);
    let id = bead(&t, "work");
    let slung = t.json(&["sling", &id]);
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    let wt = t.worktree(&agent);
    std::fs::write(wt.join("notes.txt"), "half done").unwrap();
    let n = t.json(&["polecat", "nuke", &agent]);
    assert_eq!(n["containers_removed"], 1);
    assert_eq!(n["bead_reopened"], id.as_str());
    assert_eq!(n["worktree"], "kept");
    let why = t.json(&["polecat", "list"])[0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("kept with unsaved work"), "{why}");
    assert!(wt.join("notes.txt").exists());
    assert!(containers(&t).is_empty());
    assert_eq!(t.json(&["bead", "show", &id])["status"], "open");
    let n = t.json(&["polecat", "nuke", &agent, "--force"]);
    assert_eq!(n["worktree"], "removed");
    assert_eq!(
        n["unsaved"]["uncommitted"],
        serde_json::json!(["notes.txt"])
    );
    assert!(!wt.exists());
    let repo = t.root().join("rigs/api/repo");
    assert!(
        git(&repo, &["branch", "--list"])
            .contains(&format!("polecat/{}/{id}", polecat_name(&agent)))
    );
    // The bead resumes on its own branch.
    let again = t.json(&["sling", &id]);
    assert_eq!(again[0]["branch"], slung[0]["branch"]);
    t.fails(&["polecat", "nuke", "api/ghost"], 4);
    t.fails(&["polecat", "nuke", "nonsense"], 2);
}

#[test]
fn a_rig_with_a_live_agent_cannot_be_removed() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 60", &[]);
    let id = bead(&t, "busy");
    let slung = t.json(&["sling", &id]);
    let err = t.fails(&["rig", "remove", "api"], 3);
    assert!(err.contains("live agent"), "{err}");
    assert_eq!(t.json(&["rig", "list"]).as_array().unwrap().len(), 1);
    t.ok(&[
        "polecat",
        "nuke",
        slung[0]["agent"].as_str().unwrap(),
        "--force",
    ]);
    t.ok(&["rig", "remove", "api"]);
}

/// `gt sling` itself killed between two of its steps: the next patrol (after the spawn
/// timeout) finishes or redoes the dispatch; the bead ends with one running container.
fn sling_killed_at(fp: &str) {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("spawn_timeout = \"3s\"\nretry_backoff = [\"0s\"]", "");
    t.rig("sleep 300", &[]);
    let id = bead(&t, "interrupted");
    let out = t
        .cmd()
        .args(["sling", &id])
        .env("FAILPOINTS", format!("{fp}=panic"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "{fp}: sling should have died");
    // Within the spawn timeout a patrol leaves the half-made dispatch alone.
    let p = t.patrol_json();
    assert!(p["deaths"].as_array().unwrap().is_empty(), "{fp}: {p}");
    t.patrol_until(&format!("recovery after {fp}"), 60, |t| {
        t.bead_status(&id) == "in_progress" && t.running_containers().len() == 1
    });
    let pl = t.json(&["polecat", "list"]);
    assert_eq!(pl[0]["state"], "running", "{fp}: {pl}");
    assert_eq!(containers(&t).len(), 1, "{fp}");
    t.doctor_clean();
}

#[test]
fn sling_killed_after_claim_is_recovered() {
    sling_killed_at("sling.after_claim");
}

#[test]
fn sling_killed_after_worktree_is_recovered() {
    sling_killed_at("sling.after_worktree");
}

#[test]
fn sling_killed_after_assignment_is_recovered() {
    sling_killed_at("sling.after_assignment");
}

#[test]
fn sling_killed_after_create_is_recovered() {
    sling_killed_at("sling.after_create");
}

#[test]
fn sling_killed_after_start_is_adopted() {
    sling_killed_at("sling.after_start");
}

/// The agent's branch as git sees it in the rig's repository.
fn branch_exists(t: &TestTown, branch: &str) -> bool {
    !git(
        &t.root().join("rigs/api/repo"),
        &["branch", "--list", branch],
    )
    .trim()
    .is_empty()
}

/// Ctrl-C (or SIGTERM) while `gt sling` is paused at `step`: it undoes at once, says
/// what it undid, exits 130 (143), and the bead can be slung again at once.
fn sling_interrupted_at(step: &str, sig: &str, code: i32) {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 300", &[]);
    let id = bead(&t, "interrupted");
    let p = t.paused_at(&["sling", &id], step, None);
    p.signal(sig);
    let (exit, err) = p.finish();
    assert_eq!(exit, code, "{step}: {err}");
    assert!(err.contains("interrupted by SIG"), "{step}: {err}");
    assert!(
        err.contains(&format!("bead {id} is open again")),
        "{step}: {err}"
    );
    let b = t.json(&["bead", "show", &id]);
    assert_eq!(b["status"], "open", "{step}: {b}");
    let pl = t.json(&["polecat", "list"]);
    assert_eq!(pl[0]["state"], "idle", "{step}: {pl}");
    assert!(containers(&t).is_empty(), "{step}: a container is left");
    let agent = pl[0]["rig"].as_str().unwrap().to_string() + "/" + pl[0]["name"].as_str().unwrap();
    assert!(!t.worktree(&agent).exists(), "{step}: the worktree is left");
    let branch = format!("polecat/{}/{id}", polecat_name(&agent));
    if step == "sling.after_start" {
        // The agent ran: what it may have made stays on its branch for the next sling.
        assert!(branch_exists(&t, &branch), "{step}: {err}");
        assert!(err.contains("kept branch"), "{step}: {err}");
    } else if step != "sling.after_claim" {
        assert!(!branch_exists(&t, &branch), "{step}: the branch is left");
        assert!(err.contains("removed worktree"), "{step}: {err}");
    }
    // Nothing stands in the way of the next sling, and doctor finds nothing wrong.
    t.doctor_clean();
    let again = t.json(&["sling", &id]);
    assert_eq!(again[0]["outcome"], "dispatched", "{step}: {again}");
    assert_eq!(t.running_containers().len(), 1);
    t.doctor_clean();
}

#[test]
fn ctrl_c_after_claim_undoes_the_sling() {
    sling_interrupted_at("sling.after_claim", "INT", 130);
}

#[test]
fn ctrl_c_after_worktree_undoes_the_sling() {
    sling_interrupted_at("sling.after_worktree", "INT", 130);
}

#[test]
fn sigterm_after_assignment_undoes_the_sling() {
    sling_interrupted_at("sling.after_assignment", "TERM", 143);
}

#[test]
fn ctrl_c_after_create_undoes_the_sling() {
    sling_interrupted_at("sling.after_create", "INT", 130);
}

#[test]
fn ctrl_c_after_start_undoes_the_sling_and_keeps_the_branch() {
    sling_interrupted_at("sling.after_start", "INT", 130);
}

#[test]
fn a_fast_agent_done_before_sling_returns_is_a_success() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent(""), &[]);
    let id = t.bead("fast");
    // Sling pauses right after starting the container; meanwhile the agent says done and
    // a patrol hands its work over, all before sling marks it running.
    let release = t.dir.path().join("release-sling");
    let p = t.paused_at(&["sling", &id], "sling.after_start", Some(&release));
    t.patrol_until("the fast agent's hand-over", 60, |t| {
        t.bead_status(&id) == "done"
    });
    std::fs::write(&release, "").unwrap();
    let (exit, err) = p.finish();
    assert_eq!(
        exit, 0,
        "a sling whose own agent finished first must succeed: {err}"
    );
    let d = t.dispatches(&id);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0]["container_id"].is_string(),
        "the container is recorded: {d:?}"
    );
    let b = t.json(&["bead", "show", &id]);
    assert_eq!(b["status"], "done", "{b}");
    assert_eq!(b["attempts"], 1, "{b}");
    t.doctor_clean();
}

#[test]
fn a_failed_worktree_add_leaves_no_branch_behind() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 300", &[]);
    let id = bead(&t, "unlucky");
    let out = t
        .cmd()
        .args(["sling", &id])
        .env("FAILPOINTS", "git.worktree_add=return")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("worktree add failed"), "{err}");
    let repo = t.root().join("rigs/api/repo");
    assert_eq!(
        git(&repo, &["branch", "--list", "polecat/*"]).trim(),
        "",
        "a branch was left behind"
    );
    assert!(
        !t.root()
            .join("rigs/api/polecats")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
    assert_eq!(t.bead_status(&id), "open");
    let again = t.json(&["sling", &id]);
    assert_eq!(again[0]["outcome"], "dispatched", "{again}");
    t.doctor_clean();
}

#[test]
fn nuke_then_sling_continues_the_bead_in_its_kept_worktree() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 300", &[]);
    let id = bead(&t, "work");
    let slung = t.json(&["sling", &id]);
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    let wt = t.worktree(&agent);
    std::fs::write(wt.join("notes.txt"), "half done").unwrap();
    let out = t.ok(&["polecat", "nuke", &agent]);
    assert!(
        out.contains(&format!("`gt sling {id}` continues there")),
        "{out}"
    );
    // No --branch, no --force: the same polecat takes the bead up again, with its work.
    let again = t.json(&["sling", &id]);
    assert_eq!(again[0]["outcome"], "dispatched", "{again}");
    assert_eq!(again[0]["agent"], agent.as_str());
    assert_eq!(again[0]["branch"], slung[0]["branch"]);
    assert_eq!(again[0]["generation"], 2);
    assert_eq!(
        std::fs::read_to_string(wt.join("notes.txt")).unwrap(),
        "half done"
    );
    assert_eq!(t.running_containers().len(), 1);
    // Its earlier attempt is in the resume context.
    let d = t.dispatches(&id);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0]["reason"], "nuked");
    t.doctor_clean();
}

#[test]
fn a_nuked_polecat_is_revived_only_without_unsaved_work_unless_forced() {
    if !require_docker() {
        return;
    }
    let t = town_with_rig("sleep 300", &[]);
    let id = bead(&t, "work");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    let wt = t.worktree(&agent);
    std::fs::write(wt.join("notes.txt"), "half done").unwrap();
    t.ok(&["polecat", "nuke", &agent]);
    let err = t.fails(&["polecat", "revive", &agent], 3);
    assert!(
        err.contains("unsaved work") && err.contains("--force"),
        "{err}"
    );
    assert!(wt.join("notes.txt").exists());
    let out = t.ok(&["polecat", "revive", &agent, "--force"]);
    assert!(
        out.contains("revived") && out.contains("dropped 1 uncommitted"),
        "{out}"
    );
    assert!(!wt.exists());
    assert_eq!(t.json(&["polecat", "list"])[0]["state"], "idle");
    let err = t.fails(&["polecat", "revive", &agent], 3);
    assert!(err.contains("is idle"), "{err}");
    t.fails(&["polecat", "revive", "api/ghost"], 4);
}

#[test]
fn a_worktree_left_half_made_by_a_killed_sling_is_made_again_before_any_agent_uses_it() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("spawn_timeout = \"3s\"\nretry_backoff = [\"0s\"]", "");
    t.rig("sleep 300", &[]);
    let id = bead(&t, "half-made");
    // gt dies after git created the worktree but before it was marked complete, as when
    // it is killed (or the disk fills) mid-checkout; the test takes files away and
    // truncates the index the way a partial checkout leaves them.
    let out = t
        .cmd()
        .args(["sling", &id])
        .env("FAILPOINTS", "git.worktree_add.before_mark=panic")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let agent = t.json(&["polecat", "list"])[0]["rig"]
        .as_str()
        .unwrap()
        .to_string()
        + "/"
        + t.json(&["polecat", "list"])[0]["name"].as_str().unwrap();
    let wt = t.worktree(&agent);
    assert!(wt.join("README").exists(), "the checkout happened");
    std::fs::remove_file(wt.join("README")).unwrap();
    let git_file = std::fs::read_to_string(wt.join(".git")).unwrap();
    let admin = std::path::PathBuf::from(git_file.trim().trim_start_matches("gitdir: "));
    std::fs::write(admin.join("index"), b"").unwrap();
    t.patrol_until("the re-dispatch", 60, |t| {
        t.bead_status(&id) == "in_progress" && t.running_containers().len() == 1
    });
    // The new dispatch works in a complete worktree: nothing deleted, nothing staged.
    assert!(
        wt.join("README").exists(),
        "the worktree was not made again"
    );
    assert_eq!(git(&wt, &["status", "--porcelain"]).trim(), "");
    t.doctor_clean();
}

#[test]
fn a_database_locked_while_sling_starts_the_agent_loses_no_work() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("spawn_timeout = \"3s\"", "");
    t.rig_with_remote(&scripted_agent(""), &[]);
    let id = t.bead("locked out");
    // Sling pauses after starting the container; the test takes the write lock and holds
    // it past sling's busy timeout while the agent works, commits and says done.
    let release = t.dir.path().join("release-sling");
    let p = t.paused_at(&["sling", &id], "sling.after_start", Some(&release));
    let holder = rusqlite::Connection::open(t.root().join(".gt/town.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::fs::write(&release, "").unwrap();
    let (code, err) = p.finish();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("patrol"), "sling says who finishes it: {err}");
    holder.execute_batch("ROLLBACK").unwrap();
    // Nothing was undone on a guess: the agent's work lands.
    t.patrol_until("the locked-out agent's work to land", 60, |t| {
        t.bead_status(&id) == "done"
    });
    assert_eq!(
        t.json(&["mq", "list", "--all"]).as_array().unwrap().len(),
        1
    );
    t.doctor_clean();
}

#[test]
fn a_fifo_or_symlink_planted_as_the_worktree_mark_neither_hangs_nor_misleads_patrol() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("retry_backoff = [\"0s\"]", "breaker_failures = 1000");
    // In generation 1 each agent swaps the mark of its own worktree for something the
    // host must not open as a file (a FIFO would block a reader forever, /dev/zero never
    // ends), then dies; patrol re-dispatches both at once.
    t.rig(
        "if [ \"$GT_GENERATION\" = 1 ]; then m=$(git rev-parse --git-dir)/gt-complete; rm -f \"$m\"; \
         if [ \"$GT_AGENT\" = api/fifo ]; then mkfifo \"$m\"; else ln -s /dev/zero \"$m\"; fi; exit 1; fi; \
         echo more >> notes.txt; sleep 300",
        &["--max-polecats", "2"],
    );
    let a = bead(&t, "fifo");
    let b = bead(&t, "zero");
    t.ok(&["sling", &a, "--polecat", "fifo"]);
    t.ok(&["sling", &b, "--polecat", "zero"]);
    t.wait_exited(2);
    let mut p = t.spawn(&["patrol", "--json"], &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(deadline_secs(30));
    let status = loop {
        if let Some(s) = p.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = p.kill();
            panic!("patrol hung on a planted worktree mark");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    t.patrol_until("both re-dispatched", 60, |t| {
        t.running_containers().len() == 2
    });
    for agent in ["api/fifo", "api/zero"] {
        assert!(
            t.worktree(agent).join("notes.txt").exists(),
            "{agent} works again"
        );
    }
    t.doctor_clean();
}
