//! Issue 11: credentials. A secret reaches the agent command's environment through a
//! read-only file, and nowhere else: not the container's config, the database, the
//! event log, `gt rig show`, `gt peek` or any command's output.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use support::*;

/// Every command's stdout and stderr, to search for a leaked value at the end.
#[derive(Default)]
struct Transcript(String);

impl Transcript {
    fn run(&mut self, t: &TestTown, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = t.cmd();
        c.args(args);
        if let Some(input) = stdin {
            c.write_stdin(input.to_string());
        }
        let out = c.output().unwrap();
        self.0 += &format!(
            "$ gt {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&mut self, t: &TestTown, args: &[&str]) -> String {
        let out = self.run(t, args, None);
        assert!(
            out.status.success(),
            "gt {}: exit {:?}\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn set_secret(t: &TestTown, name: &str, value: &str) -> Output {
    t.cmd()
        .args(["secret", "set", name])
        .write_stdin(format!("{value}\n"))
        .output()
        .unwrap()
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The agent proves it saw the key without printing it (its reverse), prints it once
/// (for `gt peek` to redact), and shows how /gt-secrets looks from inside.
const PROOF_AGENT: &str = r#"set -eu
echo "reversed=$(printf %s "$MY_KEY" | rev)"
echo "leak=$MY_KEY"
echo "plain=$PLAIN_VAR"
if touch /gt-secrets/MY_KEY 2>/dev/null; then echo secrets-writable; else echo secrets-read-only; fi
ls -ln /gt-secrets
echo proof > proof.txt && git add proof.txt && git commit -qm "saw the key"
while [ ! -e /gt/release ]; do sleep 0.1; done
gt done -m "saw the key"
"#;

#[test]
fn a_secret_reaches_the_agent_command_and_nothing_else_sees_its_value() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let mut log = Transcript::default();
    let value = format!("gtS3cr3t-{}-Qz", std::process::id());
    let reversed: String = value.chars().rev().collect();

    let out = log.run(
        &t,
        &["secret", "set", "MY_KEY"],
        Some(&format!("{value}\n")),
    );
    assert!(out.status.success(), "{out:?}");
    t.rig_with_remote(
        PROOF_AGENT,
        &["--secret", "MY_KEY", "--env", "PLAIN_VAR=visible"],
    );
    let id = t.bead("use the key");
    let slung: serde_json::Value =
        serde_json::from_str(&log.ok(&t, &["--json", "sling", &id])).unwrap();
    let agent = slung[0]["agent"].as_str().unwrap().to_string();
    let name = polecat_name(&agent).to_string();

    // The agent saw the value (its reverse), in its command's environment only.
    let peek = wait_for("the agent's proof", 60, || {
        let out = log.ok(&t, &["peek", &agent]);
        out.contains("secrets-read-only").then_some(out)
    });
    assert!(peek.contains(&format!("reversed={reversed}")), "{peek}");
    assert!(peek.contains("plain=visible"), "{peek}");
    // gt peek shows the value's name, never the value; --raw and --json too.
    assert!(peek.contains("leak=[secret MY_KEY]"), "{peek}");
    assert!(peek.contains("-r--------"), "files are 0400: {peek}");
    let raw = log.ok(&t, &["peek", "--raw", &agent]);
    assert!(raw.contains("leak=[secret MY_KEY]"), "{raw}");
    let json = log.ok(&t, &["--json", "peek", &agent]);
    assert!(json.contains("leak=[secret MY_KEY]"), "{json}");

    // The container's config names the mount, holds the plain env, never the value.
    let name_filter = format!("label=gt.town={}", t.id);
    let ids = docker(&["ps", "-aq", "--filter", &name_filter]);
    let ids = String::from_utf8_lossy(&ids.stdout).trim().to_string();
    assert!(!ids.is_empty());
    let inspect = docker(&["inspect", &ids]);
    assert!(inspect.status.success());
    assert!(
        !contains(&inspect.stdout, &value),
        "docker inspect shows the key"
    );
    let c: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let env = c[0]["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "PLAIN_VAR=visible"), "{env:?}");
    assert!(
        !env.iter()
            .any(|e| e.as_str().unwrap().starts_with("MY_KEY="))
    );
    let mounts = c[0]["Mounts"].as_array().unwrap();
    let m = mounts
        .iter()
        .find(|m| m["Destination"] == "/gt-secrets")
        .expect("/gt-secrets is mounted");
    assert_eq!(m["RW"], false);

    // The host's copy for this agent is private.
    let copy = t.root().join("agents/api").join(&name).join("secrets");
    assert_eq!(mode(&copy), 0o700);
    assert_eq!(mode(&copy.join("MY_KEY")), 0o400);

    // Hand over; the work lands.
    std::fs::write(
        t.root().join("agents/api").join(&name).join("box/release"),
        "",
    )
    .unwrap();
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");

    // Nowhere else: the database, the event log, rig show, every command's output.
    let db = t.root().join(".gt");
    for f in ["town.db", "town.db-wal", "town.db-shm"] {
        if let Ok(bytes) = std::fs::read(db.join(f)) {
            assert!(!contains(&bytes, &value), "{f} holds the key");
        }
    }
    let events = log.ok(&t, &["--json", "log", "-n", "100000"]);
    assert!(events.contains("\"secret.set\""), "{events}");
    log.ok(&t, &["log", "-n", "100000"]);
    let show = log.ok(&t, &["--json", "rig", "show", "api"]);
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["secrets"], serde_json::json!(["MY_KEY"]));
    log.ok(&t, &["rig", "show", "api"]);
    log.ok(&t, &["secret", "list"]);
    log.ok(&t, &["--json", "secret", "list"]);
    log.ok(&t, &["bead", "show", &id]);
    log.ok(&t, &["status"]);
    assert!(
        !log.0.contains(&value),
        "a command printed the key:\n{}",
        log.0
    );
}

#[test]
fn a_secret_value_is_never_taken_from_the_command_line() {
    let t = TestTown::new();
    let out = t.run(&["secret", "set", "MY_KEY", "the-value-itself"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!t.root().join(".gt/secrets/MY_KEY").exists());
    let help = t.ok(&["secret", "set", "--help"]);
    assert!(help.contains("--file"), "{help}");
    assert!(help.contains("stdin"), "{help}");
    // An empty value and a bad name are refused, naming what is wrong.
    let out = t
        .cmd()
        .args(["secret", "set", "MY_KEY"])
        .write_stdin("\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    let out = set_secret(&t, "my-key", "value");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn secret_list_shows_names_only_and_the_files_are_private() {
    let t = TestTown::new();
    let before = t.event_count();
    for (n, v) in [
        ("ALPHA_KEY", "alpha-value-1234"),
        ("BETA", "beta-value-5678"),
    ] {
        let out = set_secret(&t, n, v);
        assert!(out.status.success(), "{out:?}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(v));
    }
    let dir = t.root().join(".gt/secrets");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ALPHA_KEY")), 0o600);
    assert_eq!(
        std::fs::read_to_string(dir.join("ALPHA_KEY")).unwrap(),
        "alpha-value-1234",
        "the trailing newline is dropped"
    );
    let text = t.ok(&["secret", "list"]);
    assert!(
        text.contains("ALPHA_KEY") && text.contains("BETA"),
        "{text}"
    );
    let json = t.json(&["secret", "list"]);
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ALPHA_KEY", "BETA"]);
    let all = format!("{text}{json}");
    assert!(!all.contains("alpha-value") && !all.contains("beta-value"));

    // Set again: replaced. Events name the secret, never the value.
    let out = set_secret(&t, "BETA", "beta-value-9999");
    assert!(String::from_utf8_lossy(&out.stdout).contains("replaced"));
    t.ok(&["secret", "rm", "BETA"]);
    assert!(!dir.join("BETA").exists());
    t.fails(&["secret", "rm", "BETA"], 4);
    let events = t.json(&["log", "-n", "100000"]);
    assert_eq!(events.as_array().unwrap().len(), before + 4);
    let text = events.to_string();
    assert!(text.contains("secret.set") && text.contains("secret.removed"));
    assert!(!text.contains("value-"), "{text}");
}

#[test]
fn a_missing_secret_makes_sling_exit_2_and_change_nothing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = t.source_repo("api");
    let image = test_image();
    let out = t.run(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &image,
        "--command",
        "true",
        "--secret",
        "MISSING_KEY",
    ]);
    assert!(out.status.success(), "{out:?}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("warning:") && warned.contains("gt secret set MISSING_KEY"),
        "{warned}"
    );
    let id = t.bead("needs a key");
    let events = t.event_count();
    let err = t.fails(&["sling", &id], 2);
    assert!(err.contains("MISSING_KEY"), "{err}");
    assert!(err.contains("gt secret set MISSING_KEY"), "{err}");
    assert_eq!(t.event_count(), events, "nothing recorded");
    assert_eq!(t.bead_status(&id), "open");
    assert_eq!(t.all_containers(), 0);
    assert!(!t.root().join("rigs/api/polecats").exists());
    assert!(t.json(&["polecat", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn presets_fill_image_command_env_and_the_secret_they_need() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    let src = src.to_str().unwrap();
    let out = t.run(&["rig", "add", "cx", src, "--agent", "codex"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("gt secret set OPENAI_API_KEY"));
    let r = t.json(&["rig", "show", "cx"]);
    assert_eq!(r["agent"], "codex");
    assert_eq!(r["image"], "gt-codex:latest");
    assert!(
        r["command"]
            .as_str()
            .unwrap()
            .starts_with("codex exec --json"),
        "{r}"
    );
    assert_eq!(r["secrets"], serde_json::json!(["OPENAI_API_KEY"]));
    let text = t.ok(&["rig", "show", "cx"]);
    assert!(text.contains("agent:          codex"), "{text}");

    // Claude takes the OAuth token when only that one is set; explicit flags win.
    set_secret(&t, "CLAUDE_CODE_OAUTH_TOKEN", "token-value-1234");
    t.ok(&[
        "rig", "add", "cl", src, "--agent", "claude", "--image", "mine:1",
    ]);
    let r = t.json(&["rig", "show", "cl"]);
    assert_eq!(r["image"], "mine:1");
    assert!(r["command"].as_str().unwrap().starts_with("claude -p"));
    assert_eq!(
        r["env"],
        serde_json::json!({ "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1" })
    );
    assert_eq!(r["secrets"], serde_json::json!(["CLAUDE_CODE_OAUTH_TOKEN"]));

    // rig set: a given list replaces the rig's; --no-env and --no-secrets clear.
    t.ok(&["rig", "set", "cl", "--env", "A=1", "--env", "B=two"]);
    let r = t.json(&["rig", "show", "cl"]);
    assert_eq!(r["env"], serde_json::json!({ "A": "1", "B": "two" }));
    t.ok(&["rig", "set", "cl", "--no-env", "--no-secrets"]);
    let r = t.json(&["rig", "show", "cl"]);
    assert_eq!(r["env"], serde_json::json!({}));
    assert_eq!(r["secrets"], serde_json::json!([]));
    t.fails(&["rig", "set", "cl", "--env", "NOEQUALS"], 2);
    t.fails(&["rig", "set", "cl", "--secret", "lower"], 2);
    t.fails(&["rig", "set", "cl", "--agent", "gpt"], 2);

    // A rig without --agent is custom, and gt init's default command says so.
    t.ok(&["rig", "add", "plain", src]);
    let r = t.json(&["rig", "show", "plain"]);
    assert_eq!(r["agent"], "custom");
    assert!(
        r["command"]
            .as_str()
            .unwrap()
            .contains("no agent configured"),
        "{r}"
    );
}

#[test]
fn a_key_given_in_command_or_env_warns_toward_gt_secret_set() {
    let t = TestTown::new();
    let src = t.source_repo("api");
    let src = src.to_str().unwrap();
    let out = t.run(&[
        "rig",
        "add",
        "api",
        src,
        "--command",
        "my-agent --key sk-ant-api03-abcdefgh",
    ]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("--command"),
        "{err}"
    );
    assert!(err.contains("gt secret set"), "{err}");
    let out = t.run(&["rig", "set", "api", "--env", "TOKEN=ghp_abcdefabcdef123456"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("--env TOKEN"),
        "{err}"
    );
    assert!(
        !err.contains("ghp_abc"),
        "the warning does not repeat the value: {err}"
    );
    // A preset's command is not a key.
    let out = t.run(&["rig", "set", "api", "--agent", "codex"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("looks like"));
}

#[test]
fn a_sling_that_fails_to_start_leaves_no_copy_of_the_secrets() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    set_secret(&t, "MY_KEY", "undo-value-1234");
    let src = t.source_repo("api");
    t.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        "gt-no-such-image:latest",
        "--command",
        "true",
        "--secret",
        "MY_KEY",
    ]);
    let id = t.bead("never starts");
    let out = t.run(&["sling", &id]);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(t.bead_status(&id), "open");
    let agents = t.root().join("agents/api");
    assert!(
        agents.is_dir(),
        "the sling got as far as the agent's mailbox"
    );
    for e in std::fs::read_dir(&agents).unwrap() {
        let copy = e.unwrap().path().join("secrets");
        assert!(!copy.exists(), "{} is left behind", copy.display());
    }
}
