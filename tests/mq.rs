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
    let mr = t.json(&["mq", "list"])[0].clone();
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
    // Unknown: exit 4.
    t.fails(&["diff", "api-nope"], 4);
    t.fails(&["mq", "show", "999"], 4);
}
