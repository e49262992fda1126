//! Transcripts: a dispatch's output is kept by the host once its container is gone, and
//! a death comes with its last words.

mod support;

use support::*;

#[test]
fn an_agent_that_cannot_start_says_why_in_its_death_record_and_transcript() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1\nretry_backoff = [\"0s\"]", "");
    t.rig_with_remote("echo 'sh: claude: not found' >&2; exit 127", &[]);
    let id = t.bead("needs a real agent");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    t.wait_exited(1);
    t.patrol_until("the bead to fail", 60, |t| t.bead_status(&id) == "failed");
    let show = t.json(&["bead", "show", &id]);
    let reason = show["dispatches"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("exited with code 127") && reason.contains("claude: not found"),
        "{show}"
    );
    // The container is gone (removed by hand, even); its output is not.
    remove_town_containers(&t);
    let peek = t.ok(&["peek", &agent]);
    assert!(peek.contains("sh: claude: not found"), "{peek}");
    let files: Vec<_> = std::fs::read_dir(t.root().join("transcripts/api").join(&id))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "one transcript per dispatch");
}

#[test]
fn a_finished_agent_can_be_peeked_after_its_container_is_released() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = t.rig_with_remote(
        "echo transcript-line-one; echo work > w.txt; gt done -m finished",
        &[],
    );
    let id = t.bead("say something");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    remove_town_containers(&t);
    let peek = t.ok(&["peek", &agent]);
    assert!(peek.contains("transcript-line-one"), "{peek}");
    assert!(remote.exists());
}

fn remove_town_containers(t: &TestTown) {
    let out = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={}", t.id)]);
    for c in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        docker(&["rm", "-f", c]);
    }
    let left = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={}", t.id)]);
    assert!(left.stdout.is_empty());
}
