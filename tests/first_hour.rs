//! The first hour of a new user: what gt says when the engine or the default image is
//! missing names the one step to take (issue "The first hour", item 1).

mod support;
use support::*;

/// `gt doctor` and every command needing the engine name what this machine lacks.
#[test]
fn an_engine_that_is_gone_is_named_with_the_step_that_brings_it_back() {
    let t = TestTown::new();
    let gone = tempfile::tempdir().unwrap();
    // DOCKER_HOST at a socket nobody serves: start it, or unset it.
    let host = format!("unix://{}/docker.sock", gone.path().display());
    let out = t
        .cmd()
        .env("DOCKER_HOST", &host)
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("nothing listens at DOCKER_HOST={host}"))
            && text.contains("unset DOCKER_HOST"),
        "{text}"
    );
    // The private engine `bash dev.sh` started and stopped again is recognised.
    let host = "unix:///tmp/gt-dockerd.AbC123/docker.sock";
    let out = t
        .cmd()
        .env("DOCKER_HOST", host)
        .args(["sling", "api-3k9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a private engine `bash dev.sh` started and stopped again"),
        "{err}"
    );
    // A socket that exists but is served by nobody (the engine died): restart it.
    let sock = gone.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let out = t
        .cmd()
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .arg("status")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = t
        .cmd()
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("exists but no engine answers on it"),
        "{text}\n(status said: {all})"
    );
}

/// The default image has one name (`gt.toml`'s `defaults.image` is what `gt image build`
/// makes), and doctor says how to get it when it is missing.
#[test]
fn a_missing_default_image_is_named_with_the_command_that_builds_it() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let toml = std::fs::read_to_string(t.root().join("gt.toml")).unwrap();
    assert!(toml.contains("image = \"gt-agent:latest\""), "{toml}");
    let help = t.ok(&["image", "build", "--help"]);
    assert!(help.contains("gt-agent:latest"), "{help}");
    // A default image that is not on the engine (a name nobody built).
    let missing = format!("gt-first-hour-{}:latest", t.id);
    std::fs::write(
        t.root().join("gt.toml"),
        toml.replace("\"gt-agent:latest\"", &format!("\"{missing}\"")),
    )
    .unwrap();
    let text = t.ok(&["doctor"]);
    assert!(
        text.contains(&format!("the default image {missing}"))
            && text.contains(&format!("`gt image build --tag {missing}`")),
        "{text}"
    );
    // Once the image is there, doctor says nothing of it.
    let img = Image::new("first-hour");
    assert!(docker(&["tag", &test_image(), &img.0]).status.success());
    std::fs::write(
        t.root().join("gt.toml"),
        toml.replace("\"gt-agent:latest\"", &format!("\"{}\"", img.0)),
    )
    .unwrap();
    let text = t.ok(&["doctor"]);
    assert!(!text.contains("the default image"), "{text}");
    assert!(text.starts_with("ok     the engine answers at "), "{text}");
}

/// The agent script of the README's "Write your first agent", exactly as printed there.
fn readme_agent() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```sh\n# first-agent.sh")
        .expect("README has the first agent");
    let script = &readme[start + "```sh\n".len()..];
    script[..script.find("```").unwrap()].to_string()
}

/// The README's first agent, run as the README runs it: two beads, both reviewed, one
/// sent back with a reason and redone with it, both landed.
#[test]
fn the_readmes_first_agent_lands_two_beads_one_of_them_after_a_send_back() {
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
        &test_image(),
    ]);
    t.ok(&["rig", "set", "api", "--command", &readme_agent()]);
    let a = t.ok(&[
        "bead",
        "create",
        "--rig",
        "api",
        "Say hello",
        "-m",
        "A first note",
    ]);
    let b = t.ok(&[
        "bead",
        "create",
        "--rig",
        "api",
        "Say goodbye",
        "-m",
        "A second note",
    ]);
    let (a, b) = (a.trim().to_string(), b.trim().to_string());
    t.ok(&["sling", &a, &b]);
    let mr_state = |t: &TestTown, bead: &str| -> Option<String> {
        t.json(&["mq", "list", "--all"])
            .as_array()
            .unwrap()
            .iter()
            .rfind(|m| m["bead"] == bead)
            .map(|m| m["state"].as_str().unwrap().to_string())
    };
    t.patrol_until("both in review", 120, |t| {
        mr_state(t, &a).as_deref() == Some("needs-review")
            && mr_state(t, &b).as_deref() == Some("needs-review")
    });
    t.ok(&["mq", "approve", &a]);
    t.ok(&["mq", "reject", &b, "-m", "Say it with a smile"]);
    t.patrol_until("the first landed, the second redone", 120, |t| {
        mr_state(t, &a).as_deref() == Some("merged")
            && mr_state(t, &b).as_deref() == Some("needs-review")
    });
    // The redone work carries the reviewer's words, read from `gt prime`.
    let diff = t.ok(&["diff", &b]);
    assert!(diff.contains("Say it with a smile"), "{diff}");
    t.ok(&["mq", "approve", &b]);
    t.patrol_until("the second landed", 120, |t| {
        mr_state(t, &b).as_deref() == Some("merged")
    });
    // Landed where the user looks: their own repository, its main and its work tree.
    let landed = || git(&src, &["ls-tree", "--name-only", "main", "notes/"]);
    t.patrol_until("both delivered into the user's repository", 60, |_| {
        let l = landed();
        l.contains(&format!("{a}.md")) && l.contains(&format!("{b}.md"))
    });
    assert!(src.join(format!("notes/{b}.md")).is_file());
    let repo = src.clone();
    let hello = git(&repo, &["show", &format!("main:notes/{a}.md")]);
    assert_eq!(hello, "# Say hello\n");
    let bye = git(&repo, &["show", &format!("main:notes/{b}.md")]);
    assert!(
        bye.starts_with("# Say goodbye\n") && bye.contains("Say it with a smile"),
        "{bye}"
    );
    t.doctor_clean();
}
