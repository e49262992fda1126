//! The README's main job (`bash dev.sh demo` runs `tests/support/demo.sh` with a
//! release build): run here with the test build, so the command the README promises
//! never rots.

mod support;

use support::*;

#[test]
fn the_main_job_of_the_readme_runs_end_to_end() {
    if !require_docker() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/demo.sh"
        ))
        .arg(gt_bin())
        .env("TMPDIR", tmp.path())
        .env_remove("GT_TOWN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Every bead done with its merge request, the killed agent recovered, the convoy
    // landed, the town's invariants hold.
    assert!(stdout.contains("killed container"), "{stdout}");
    for line in [
        "re-dispatched: ",
        "landed  3/3 done, 0 failed, 3 merged",
        "ok     one live owner",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert!(!stdout.contains("BREACH"), "{stdout}");
}
