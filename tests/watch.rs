//! Issue 13, point 3: `gt patrol --watch` reacts to events, on a real Docker engine: an
//! agent's request file (inotify) and a container of the town ending (the engine's
//! events; agents and merge-queue gates) start a pass at once, long before the interval.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// The interval of the watching patrol: every deadline below is far shorter, so only
/// an event can have started the pass that a test waits for.
const INTERVAL: &str = "60s";
const WELL_UNDER: Duration = Duration::from_secs(20);

/// `gt patrol --watch` in the background, killed when dropped.
struct Watch(std::process::Child);

impl Watch {
    fn start(t: &TestTown) -> Watch {
        let log = std::fs::File::create(t.dir.path().join("watch.log")).unwrap();
        let child = std::process::Command::new(gt_bin())
            .args(["patrol", "--watch", "--interval", INTERVAL, "-v"])
            .env("GT_TOWN", t.root())
            .env_remove("GT_AGENT")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        // Its first pass (at start) is not one an event caused.
        wait_for("the first pass of the watch", 30, || {
            (passes(t) >= 1).then_some(())
        });
        Watch(child)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Patrol passes finished so far.
fn passes(t: &TestTown) -> usize {
    t.json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "patrol.finished")
        .count()
}

fn running_agent(t: &TestTown, bead: &str) -> String {
    wait_for("the bead's agent to run", 60, || {
        t.json(&["polecat", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["bead"] == bead && p["state"] == "running")
            .map(|p| p["name"].as_str().unwrap().to_string())
    })
}

/// Poll `f` for at most `WELL_UNDER` (not scaled: the point is the latency) and return
/// how long it took.
fn within_well_under(t: &TestTown, what: &str, f: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > WELL_UNDER {
            let log = std::fs::read_to_string(t.dir.path().join("watch.log")).unwrap_or_default();
            panic!("{what}: not within {WELL_UNDER:?} of a {INTERVAL} interval\nwatch log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn watch_hands_over_a_done_long_before_its_interval() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent("AGENT_HOLD=1"), &[]);
    let _w = Watch::start(&t);
    let id = t.bead("quick");
    t.ok(&["sling", &id]);
    let name = running_agent(&t, &id);
    // Its checkpoint is ingested at once too.
    within_well_under(&t, "the checkpoint ingested", || {
        t.dispatches(&id)[0]["checkpoints"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    });
    // Released, it says `gt done`; the watch hands the bead over.
    std::fs::write(
        t.root().join("agents/api").join(&name).join("box/release"),
        "",
    )
    .unwrap();
    let took = within_well_under(&t, "the bead done", || t.bead_status(&id) == "done");
    eprintln!("gt done → bead done: {took:?}");
    // The hand-over ends (the polecat released) before the town is checked.
    within_well_under(&t, "the polecat released", || {
        t.json(&["polecat", "list"])[0]["state"] == "idle"
    });
    t.doctor_clean();
}

#[test]
fn watch_redispatches_a_killed_agent_long_before_its_interval() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent("AGENT_HOLD=1"), &[]);
    let _w = Watch::start(&t);
    let id = t.bead("killed");
    t.ok(&["sling", &id]);
    running_agent(&t, &id);
    let running = t.running_containers();
    assert_eq!(running.len(), 1);
    assert!(docker(&["kill", &running[0]]).status.success());
    let took = within_well_under(&t, "the re-dispatch", || {
        let ds = t.dispatches(&id);
        ds.len() == 2 && ds[1]["container_id"].is_string()
    });
    eprintln!("container kill → re-dispatch: {took:?}");
    let ds = t.dispatches(&id);
    assert!(
        ds[0]["reason"].as_str().unwrap().contains("not counted"),
        "{ds:?}"
    );
}

#[test]
fn a_gate_container_of_the_town_ending_wakes_the_watch() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let _w = Watch::start(&t);
    // Let the passes the start caused settle, then count.
    let before = passes(&t);
    let label = format!("gt.town={}", t.id);
    let out = docker(&[
        "run",
        "-d",
        "--label",
        &label,
        "--label",
        "gt.gate=api",
        &test_image(),
        "true",
    ]);
    assert!(out.status.success(), "{out:?}");
    within_well_under(&t, "a pass after the gate ended", || passes(&t) > before);
}

/// A person's `gt mq approve` wakes the watch: the change lands at once, not at the
/// next interval (a new user waited out a 30 s interval for it).
#[test]
fn an_approval_wakes_the_watch_and_the_change_lands_long_before_its_interval() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig(&scripted_agent(""), &[]);
    let id = t.bead("approved");
    t.ok(&["sling", &id]);
    t.patrol_until("the change waiting for review", 60, |t| {
        t.json(&["mq", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["bead"] == id.as_str() && m["state"] == "needs-review")
    });
    let _w = Watch::start(&t);
    // The watch settles: its first passes may wake it again (their own writes to the
    // outboxes); once no pass came for 3 s, only the interval (60 s) or a new event can
    // start one.
    let mut last = passes(&t);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
        let now = passes(&t);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    t.ok(&["mq", "approve", &id]);
    let took = within_well_under(&t, "the approved change merged", || {
        t.json(&["mq", "list", "--all"])
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["bead"] == id.as_str() && m["state"] == "merged")
    });
    eprintln!("gt mq approve → merged: {took:?}");
}
