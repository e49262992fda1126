//! Issue 21's siblings found while fixing it: races between an agent's last words and
//! the patrol pass that looks at it.

mod support;

use support::*;

/// The agent of `bead` once it runs: `(rig/name, name)`.
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

/// An agent that says done after a pass has read its outbox and exits before that pass
/// lists the containers is handed over, not recorded as "exited without done" (which
/// counted an attempt and dispatched the finished bead again).
#[test]
fn a_done_written_between_a_passs_ingest_and_its_container_list_is_not_a_death() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&scripted_agent("AGENT_HOLD=1"), &[]);
    let id = t.bead("said done late");
    t.ok(&["sling", &id]);
    let name = running_agent(&t, &id);
    // The pass stops right after its ingest; then the agent says done and exits.
    let go = t.root().join("go-on");
    let mut p = t.paused_at(&["patrol"], "patrol.after_ingest", Some(&go));
    std::fs::write(
        t.root().join("agents/api").join(&name).join("box/release"),
        "",
    )
    .unwrap();
    t.wait_exited(1);
    std::fs::write(&go, "").unwrap();
    let status = p.child.wait().unwrap();
    assert!(status.success(), "{:?}", p.stderr);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    let d = t.dispatches(&id);
    assert_eq!(d.len(), 1, "{d:?}");
    let reason = d[0]["reason"].as_str().unwrap_or("");
    assert!(!reason.contains("without done"), "{d:?}");
    assert_eq!(t.json(&["bead", "show", &id])["attempts"], 1);
    t.doctor_clean();
}
