//! The adversary's attacks on the first hour's new surfaces: landing into the user's own
//! repository, the mayor's mail about it, the README's first agent. Each test is a
//! hostile agent (a rig command) or hostile content against the real binary, a real
//! engine and real git, and asserts the SAFE behaviour: it fails while the break exists
//! and passes once it is fixed. Attacks whose defence holds stay as tests too.

mod support;

use std::path::{Path, PathBuf};
use support::*;

/// Rig `api` from a fresh local repository at `src` (no --remote), the scripted agent
/// with `knobs`, landing after review.
fn local_rig_at(t: &TestTown, src: &Path, command: &str) {
    make_repo(src);
    let image = test_image();
    t.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &image,
        "--command",
        command,
        "--memory",
        "256m",
    ]);
}

fn mr_state(t: &TestTown, bead: &str) -> String {
    t.json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .rfind(|m| m["bead"] == bead)
        .map(|m| m["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn land_one(t: &TestTown, title: &str) -> String {
    let id = t.bead(title);
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    t.ok(&["mq", "approve", &id]);
    t.patrol_until("its merge request merged", 90, |t| {
        mr_state(t, &id) == "merged"
    });
    id
}

fn head(dir: &Path, rev: &str) -> String {
    git(dir, &["rev-parse", rev]).trim().to_string()
}

/// The command between the first pair of backticks after `Take it with` / the indented
/// command line of the mayor's mail.
fn mailed_command(body: &str) -> String {
    body.lines()
        .find(|l| l.starts_with("    git "))
        .unwrap_or_else(|| panic!("no command in the mail: {body}"))
        .trim()
        .to_string()
}

// ATTACK (the mail's "exact command"): the user's repository lives at a path a shell
// reads as more than one word, and as code (`my repo`, a `'`, a `$(...)`, a `;`). The
// landing cannot be delivered (a dirty work tree), so gt mails the mayor the command that
// takes the work. Pasted as it is into sh, that command must take the work (the path
// quoted) and run nothing the path spells; `gt mq show` says the same command.
#[test]
fn the_mailed_command_to_take_undelivered_work_quotes_the_users_path() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t
        .root()
        .parent()
        .unwrap()
        .join("src")
        .join("my repo;'x' $(touch pwned-by-path)");
    local_rig_at(&t, &src, &scripted_agent(""));
    std::fs::write(src.join("README"), "my own edit\n").unwrap();
    let id = land_one(&t, "a change");
    let mails = t.mayor_mail_id("land-source-api-");
    assert_eq!(mails.len(), 1, "{mails:?}");
    let command = mailed_command(mails[0]["body"].as_str().unwrap());
    let shown = t.ok(&["mq", "show", &id]);
    assert!(shown.contains(&command), "{shown}\n---\n{command}");
    // Pasted in a shell somewhere else: it takes the work, runs nothing the path spells.
    let cwd = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("sh")
        .current_dir(cwd.path())
        .args(["-c", &command])
        .output()
        .unwrap();
    assert!(
        !cwd.path().join("pwned-by-path").exists(),
        "the mailed command ran code from the path: {command}"
    );
    assert!(out.status.success(), "{command}: {out:?}");
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(
        std::fs::read_to_string(src.join("README")).unwrap(),
        "my own edit\n"
    );
    let _: PathBuf = src;
}
