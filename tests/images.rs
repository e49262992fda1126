//! `gt image build`: images assembled from host files (and npm), imported into the real
//! engine, and used by real slings.

mod support;

use support::*;

fn inspect(image: &str) -> serde_json::Value {
    let out = docker(&["image", "inspect", image]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}

#[test]
fn a_base_image_built_from_host_files_runs_agents_as_a_non_root_user() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let image = Image::new("gt-test-base");
    let built = t.json(&["image", "build", "base", "--tag", &image.0]);
    assert_eq!(built["image"], image.0.as_str(), "{built}");
    assert!(built["size_bytes"].as_i64().unwrap() > 1 << 20, "{built}");
    let i = inspect(&image.0);
    assert_eq!(i["Config"]["User"], "10001:10001", "{i}");
    assert_eq!(i["Config"]["Labels"]["gt.image.kind"], "base", "{i}");
    // Its own tools work: bash, git, and gt itself (with the libraries it needs).
    let out = docker(&[
        "run",
        "--rm",
        &image.0,
        "bash",
        "-c",
        "git --version && gt --version && id -u",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("git version") && text.contains("10001"),
        "{text}"
    );
    // And a real sling on it lands.
    let src = t.source_repo("api");
    let remote = t.dir.path().join("remote.git");
    git(
        t.dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    t.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &image.0,
        "--remote",
        remote.to_str().unwrap(),
        "--command",
        &scripted_agent(""),
    ]);
    let id = t.bead("on the built image");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    let mr = t.json(&["mq", "list", "--all"])[0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    git(&remote, &["cat-file", "-e", &mr]);
}

#[test]
fn claude_and_codex_images_carry_the_pinned_cli_and_run_it() {
    if !require_docker() {
        return;
    }
    if !npm_reachable() {
        eprintln!("skipped: npm cannot reach its registry");
        return;
    }
    let t = TestTown::new();
    for (kind, bin) in [("claude", "claude"), ("codex", "codex")] {
        let image = Image::new(&format!("gt-test-{kind}"));
        let built = t.json(&["image", "build", kind, "--tag", &image.0]);
        let version = built["version"].as_str().unwrap().to_string();
        let i = inspect(&image.0);
        assert_eq!(
            i["Config"]["Labels"]["gt.cli.version"],
            version.as_str(),
            "{i}"
        );
        assert_eq!(i["Config"]["User"], "10001:10001");
        let out = docker(&["run", "--rm", &image.0, bin, "--version"]);
        assert!(out.status.success(), "{kind}: {out:?}");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(&version),
            "{kind} says {said}, built {version}"
        );
        eprintln!(
            "{kind}: {} bytes, {:.0}s to build",
            built["size_bytes"],
            built["seconds"].as_f64().unwrap_or(0.0)
        );
    }
}

#[test]
fn doctor_says_which_rig_lacks_its_image_or_a_secret_with_the_command_to_fix_it() {
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
        "--agent",
        "codex",
        "--image",
        "gt-no-such-image:never",
    ]);
    let report = t.json(&["doctor"]);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("image gt-no-such-image:never is not on the engine")
            && warnings.contains("gt image build codex"),
        "{report}"
    );
    assert!(
        warnings.contains("secret OPENAI_API_KEY is not set")
            && warnings.contains("gt secret set OPENAI_API_KEY"),
        "{report}"
    );
}

#[test]
fn gt_runs_in_an_image_without_glibc() {
    if !require_docker() {
        return;
    }
    // An image of one static busybox: no C library at all, no git.
    let t = TestTown::new();
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox on the host");
    let root = t.dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "sleep", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    assert!(!root.join("lib").exists() && !root.join("lib64").exists());
    let image = Image::new("gt-test-nolibc");
    let tar = std::process::Command::new("tar")
        .args(["-C", root.to_str().unwrap(), "-c", "."])
        .output()
        .unwrap();
    let mut import = std::process::Command::new("docker")
        .args([
            "import",
            "--change",
            "ENV PATH=/usr/local/bin:/bin",
            "-",
            &image.0,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(import.wait().unwrap().success());
    let src = t.source_repo("api");
    t.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &image.0,
        "--command",
        "gt prime > /dev/null && gt checkpoint -m 'no libc here' && gt done -m finished",
    ]);
    let id = t.bead("in a libc-less image");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    let show = t.json(&["bead", "show", &id]);
    assert!(show.to_string().contains("no libc here"), "{show}");
}

#[test]
fn rig_add_says_when_the_agent_command_is_not_in_the_image() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.source_repo("api");
    // The codex preset on the busybox test image: no codex in it.
    let out = t.run(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--agent",
        "codex",
        "--image",
        &test_image(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`codex` (the start of the rig's command) is not in image"),
        "{err}"
    );
    // A command the image has: no such warning.
    let out = t.run(&["rig", "set", "api", "--command", "git status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("is not in image"),
        "{err}"
    );
    // No probe container is left behind.
    let left = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("name=gt-{}-api-setup", t.id),
    ]);
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty());
}
