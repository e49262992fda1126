//! Issue 13, point 5: `gt drain` and `gt stop` stop the crew without losing work, on a
//! real Docker engine: agents asked to checkpoint, the rest stopped with their work in
//! progress committed (inside the container, as the agent), beads resumable, nothing
//! dispatched until `gt resume`.

mod support;

use support::*;

/// An agent that commits step 1, then waits for the drain mail; asked, it commits
/// step 2, records a checkpoint and exits. Resumed (its branch holds step 1), it
/// finishes with `gt done`.
const OBEYS_DRAIN: &str = r#"set -eu
gt prime >/dev/null
f="work-$GT_BEAD.txt"
if [ -e "$f" ]; then
  echo "resumed in generation $GT_GENERATION" >> "$f"
  git add -A && git commit -q -m "$GT_BEAD: finished after the drain"
  gt done -m resumed
  exit 0
fi
echo "step 1" > "$f"
git add -A && git commit -q -m "$GT_BEAD: step 1"
while ! ls /gt/inbox/drain-*.json >/dev/null 2>&1; do sleep 0.1; done
echo "step 2" >> "$f"
git add -A && git commit -q -m "$GT_BEAD: step 2, before the drain"
gt checkpoint -m "stopped for the drain after step 2"
"#;

/// An agent that commits step 1, leaves `wip.txt` uncommitted and works on until it is
/// stopped. Resumed (its branch holds wip.txt: the work in progress was committed), it
/// finishes with `gt done`; resumed without it, it fails loudly.
const WORKS_UNTIL_STOPPED: &str = r#"set -eu
gt prime > /tmp/prime.txt
f="work-$GT_BEAD.txt"
if [ -e "$f" ]; then
  [ -e wip.txt ] || { echo "the work in progress was lost" >&2; exit 1; }
  grep -q drained /tmp/prime.txt || { echo "prime does not tell the drain" >&2; exit 1; }
  echo "resumed" >> "$f"
  git add -A && git commit -q -m "$GT_BEAD: finished after the stop"
  gt done -m resumed
  exit 0
fi
echo "step 1" > "$f"
git add -A && git commit -q -m "$GT_BEAD: step 1"
echo "half-written" > wip.txt
while :; do sleep 0.1; done
"#;

fn branch_log(t: &TestTown, branch: &str) -> String {
    git(
        &t.root().join("rigs/api/repo"),
        &["log", "--format=%s", branch],
    )
}

fn bead_json(t: &TestTown, id: &str) -> serde_json::Value {
    t.json(&["bead", "show", id])
}

fn agent_of(t: &TestTown, id: &str) -> String {
    wait_for("the bead's agent to run", 60, || {
        t.json(&["polecat", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["bead"] == id && p["state"] == "running")
            .map(|p| {
                format!(
                    "{}/{}",
                    p["rig"].as_str().unwrap(),
                    p["name"].as_str().unwrap()
                )
            })
    })
}

#[test]
fn drain_asks_agents_to_checkpoint_and_resume_continues_from_their_branch() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(OBEYS_DRAIN, &[]);
    let id = t.bead("two steps");
    t.ok(&["sling", &id]);
    let agent = agent_of(&t, &id);

    let r = t.json(&["drain", "--timeout", "60s"]);
    assert_eq!(r["scope"], "*", "{r}");
    assert_eq!(r["asked"].as_array().unwrap().len(), 1, "{r}");
    let parked = r["parked"].as_array().unwrap();
    assert_eq!(parked.len(), 1, "{r}");
    assert_eq!(parked[0]["agent"], agent.as_str());
    assert_eq!(
        parked[0]["ended_on_its_own"], true,
        "it obeyed the mail: {r}"
    );
    assert!(parked[0]["kept_worktree"].is_null(), "{r}");
    assert!(t.running_containers().is_empty());

    // Resumable: open, queued, on its branch, the attempt not counted, the checkpoint kept.
    let b = bead_json(&t, &id);
    assert_eq!(b["status"], "open", "{b}");
    assert_eq!(b["attempts"], 0, "{b}");
    let branch = b["branch"].as_str().unwrap().to_string();
    assert!(branch_log(&t, &branch).contains("step 2, before the drain"));
    let d = &b["dispatches"][0];
    assert!(d["reason"].as_str().unwrap().contains("drained"), "{d}");
    assert!(
        b.to_string().contains("stopped for the drain after step 2"),
        "{b}"
    );

    // Drained: status says so, sling refuses, patrol dispatches nothing.
    assert!(t.ok(&["status"]).contains("drained since"));
    assert_eq!(t.json(&["status"])["drains"][0]["scope"], "*");
    let other = t.bead("new work");
    let err = t.fails(&["sling", &other], 3);
    assert!(
        err.contains("drained") && err.contains("gt resume"),
        "{err}"
    );
    let p = t.patrol_json();
    assert!(p["queued_dispatched"].as_array().unwrap().is_empty(), "{p}");
    assert_eq!(t.bead_status(&id), "open");

    // Resumed: the next agent continues on the branch and finishes.
    let out = t.ok(&["resume"]);
    assert!(out.contains("drain of the whole town lifted"), "{out}");
    t.patrol_until("the bead to be done", 60, |t| t.bead_status(&id) == "done");
    let log = branch_log(&t, &branch);
    for step in [
        "step 1",
        "step 2, before the drain",
        "finished after the drain",
    ] {
        assert!(log.contains(step), "{step} missing from\n{log}");
    }
    assert_eq!(bead_json(&t, &id)["attempts"], 1);
    t.doctor_clean();
}

#[test]
fn stop_commits_uncommitted_work_in_the_container_and_resume_redispatches_it() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(WORKS_UNTIL_STOPPED, &[]);
    let id = t.bead("long job");
    t.ok(&["sling", &id]);
    let agent = agent_of(&t, &id);
    let wt = t.worktree(&agent);
    wait_for("the agent's uncommitted file", 60, || {
        wt.join("wip.txt").exists().then_some(())
    });

    let r = t.json(&["stop"]);
    let parked = r["parked"].as_array().unwrap();
    assert_eq!(parked.len(), 1, "{r}");
    assert_eq!(parked[0]["ended_on_its_own"], false, "{r}");
    assert!(
        parked[0]["kept_worktree"].is_null(),
        "nothing left uncommitted: {r}"
    );
    assert!(t.running_containers().is_empty());
    assert!(!wt.exists(), "the clean worktree is removed");

    let b = bead_json(&t, &id);
    assert_eq!(b["status"], "open", "{b}");
    assert_eq!(b["attempts"], 0, "the stop is not counted: {b}");
    let branch = b["branch"].as_str().unwrap().to_string();
    let log = branch_log(&t, &branch);
    assert!(log.contains("gt: work in progress"), "{log}");
    let files = git(
        &t.root().join("rigs/api/repo"),
        &["ls-tree", "--name-only", &branch],
    );
    assert!(files.contains("wip.txt"), "{files}");

    // Nothing re-dispatches until `gt resume`: not patrol, not a sling.
    let p = t.patrol_json();
    assert!(p["queued_dispatched"].as_array().unwrap().is_empty(), "{p}");
    assert!(p["redispatched"].as_array().unwrap().is_empty(), "{p}");
    t.fails(&["sling", &id], 3);
    assert_eq!(t.bead_status(&id), "open");

    t.ok(&["resume"]);
    t.patrol_until("the bead to be done", 60, |t| t.bead_status(&id) == "done");
    let ds = t.dispatches(&id);
    assert_eq!(ds.len(), 2, "{ds:?}");
    assert!(
        ds[0]["reason"].as_str().unwrap().contains("drained"),
        "{ds:?}"
    );
    assert!(branch_log(&t, &branch).contains("finished after the stop"));
    t.doctor_clean();
}

#[test]
fn a_queued_bead_is_not_dispatched_while_its_rig_is_drained() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent("AGENT_HOLD=1"), &["--max-polecats", "1"]);
    let first = t.bead("first");
    let second = t.bead("second");
    t.ok(&["sling", &first]);
    let out = t.json(&["sling", &second]);
    assert_eq!(out[0]["outcome"], "queued", "{out}");
    agent_of(&t, &first);

    let r = t.json(&["stop", "--rig", "api"]);
    assert_eq!(r["scope"], "api", "{r}");
    assert_eq!(r["parked"].as_array().unwrap().len(), 1, "{r}");
    for _ in 0..2 {
        let p = t.patrol_json();
        assert!(p["queued_dispatched"].as_array().unwrap().is_empty(), "{p}");
    }
    assert!(t.running_containers().is_empty());
    assert_eq!(t.bead_status(&first), "open");
    assert_eq!(t.bead_status(&second), "open");
    let status = t.ok(&["status"]);
    assert!(status.contains("rig api drained since"), "{status}");

    // A town-wide resume of one rig: the rig's drain goes, dispatching resumes.
    let out = t.json(&["resume", "--rig", "api"]);
    assert_eq!(out["drains_lifted"][0], "api", "{out}");
    let p = t.patrol_json();
    assert_eq!(p["queued_dispatched"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(t.running_containers().len(), 1);
}

#[test]
fn resume_of_one_rig_leaves_a_town_drain_in_force() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig("true", &[]);
    t.ok(&["drain", "--timeout", "0s"]);
    let out = t.ok(&["resume", "--rig", "api"]);
    assert!(out.contains("the whole town stays drained"), "{out}");
    let id = t.bead("waits");
    let err = t.fails(&["sling", &id], 3);
    assert!(err.contains("the whole town is drained"), "{err}");
    t.ok(&["resume"]);
    assert!(t.json(&["status"])["drains"].as_array().unwrap().is_empty());
}

#[test]
fn drain_and_stop_name_bad_input_with_a_hint() {
    let t = TestTown::new();
    let err = t.fails(&["drain", "--rig", "nope"], 4);
    assert!(
        err.contains("rig nope not found") && err.contains("gt rig list"),
        "{err}"
    );
    let err = t.fails(&["drain", "--timeout", "soon"], 2);
    assert!(err.contains("--timeout") && err.contains("10m"), "{err}");
    t.fails(&["stop", "--rig", "nope"], 4);
    t.fails(&["resume", "--rig", "nope"], 4);
}

#[test]
fn a_drain_killed_while_waiting_is_finished_by_patrol_at_its_deadline() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(WORKS_UNTIL_STOPPED, &[]);
    let id = t.bead("long job");
    t.ok(&["sling", &id]);
    let agent = agent_of(&t, &id);
    let wt = t.worktree(&agent);
    wait_for("the agent's uncommitted file", 60, || {
        wt.join("wip.txt").exists().then_some(())
    });
    // Killed (SIGKILL) while it waits for an agent that ignores the mail.
    let mut p = t.paused_at(&["drain", "--timeout", "2s"], "drain.wait", None);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert_eq!(t.running_containers().len(), 1, "nothing stopped yet");
    t.patrol_until("patrol to stop the agent at the deadline", 60, |t| {
        t.bead_status(&id) == "open"
    });
    assert!(t.running_containers().is_empty());
    let branch = bead_json(&t, &id)["branch"].as_str().unwrap().to_string();
    assert!(branch_log(&t, &branch).contains("gt: work in progress"));
    assert_eq!(t.json(&["status"])["drains"][0]["mode"], "stop");
    t.doctor_clean();
}

/// An agent that, asked to stop, finds its work complete and says done.
const DONE_WHEN_ASKED: &str = r#"set -eu
gt prime >/dev/null
echo "all of it" > "work-$GT_BEAD.txt"
git add -A && git commit -q -m "$GT_BEAD: the whole job"
while ! ls /gt/inbox/drain-*.json >/dev/null 2>&1; do sleep 0.1; done
gt done -m "complete before the drain"
"#;

#[test]
fn an_agent_that_says_done_during_a_drain_is_handed_over_as_usual() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(DONE_WHEN_ASKED, &[]);
    let id = t.bead("nearly finished");
    t.ok(&["sling", &id]);
    let agent = agent_of(&t, &id);
    let r = t.json(&["drain", "--rig", "api", "--timeout", "60s"]);
    assert!(r["parked"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["finished"][0], format!("{agent} on {id}"), "{r}");
    // A drain stops dispatching, not hand-overs: patrol finishes the done saga.
    t.patrol_until("the bead to be done", 60, |t| t.bead_status(&id) == "done");
    assert_eq!(bead_json(&t, &id)["attempts"], 1);
    t.doctor_clean();
}

#[test]
fn a_drain_with_the_engine_away_still_stops_dispatching_exit_5() {
    let t = TestTown::new();
    let out = t
        .cmd()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["drain", "--timeout", "1m"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("the whole town is drained"), "{err}");
    let drains = t.json(&["status"])["drains"].clone();
    assert_eq!(drains[0]["scope"], "*", "{drains}");
    assert_eq!(drains[0]["mode"], "drain", "{drains}");
}

/// `gt stop` killed at each of its fail points: the next patrol finishes the stop, the
/// work in progress is on the branch, the bead is open and resumable, the town clean.
#[test]
fn stop_killed_before_or_after_stopping_a_container_is_finished_by_patrol() {
    if !require_docker() {
        return;
    }
    for fp in ["drain.before_stop", "drain.after_stop"] {
        let t = TestTown::new();
        t.rig(WORKS_UNTIL_STOPPED, &[]);
        let id = t.bead("long job");
        t.ok(&["sling", &id]);
        let agent = agent_of(&t, &id);
        let wt = t.worktree(&agent);
        wait_for("the agent's uncommitted file", 60, || {
            wt.join("wip.txt").exists().then_some(())
        });
        let out = t
            .cmd()
            .args(["stop"])
            .env("FAILPOINTS", format!("{fp}=panic"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{fp}: gt stop should have died");
        t.patrol_until(&format!("the stop finished after {fp}"), 60, |t| {
            t.bead_status(&id) == "open"
        });
        assert!(t.running_containers().is_empty(), "{fp}");
        let b = bead_json(&t, &id);
        assert_eq!(b["attempts"], 0, "{fp}: {b}");
        let branch = b["branch"].as_str().unwrap().to_string();
        assert!(
            branch_log(&t, &branch).contains("gt: work in progress"),
            "{fp}: the work in progress is on the branch"
        );
        t.doctor_clean();
    }
}
