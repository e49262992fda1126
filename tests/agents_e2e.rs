//! Real agents, end to end: `gt image build claude|codex` images, rigs made with the
//! `--agent` presets and a secret, beads slung to real containers running the real
//! Claude Code and Codex CLIs, whose model API is a scripted stub on loopback
//! (tests/support/stub.rs; containers reach it with `--network host`). The stub's turns
//! make the agent edit a file, commit, `gt checkpoint` and `gt done` through its shell
//! tool. Skipped (saying so) where npm cannot reach its registry; CI has it.

mod support;

use support::stub::{Stub, Turn};
use support::*;

const SECRET: &str = "sk-stub-e2e-7f3a9c2b51d04e68";

fn build(t: &TestTown, kind: &str) -> Image {
    let image = Image::new(&format!("gt-e2e-{kind}"));
    t.ok(&["image", "build", kind, "--tag", &image.0]);
    image
}

fn set_secret(t: &TestTown, name: &str, value: &str) {
    let out = t
        .cmd()
        .args(["secret", "set", name])
        .write_stdin(value.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// The agent's work, as the stub scripts it: a file, a commit, a checkpoint, done.
fn work_script(who: &str) -> Vec<Turn> {
    vec![
        Turn::Shell(format!(
            "echo hello from {who} > hello.txt && git add hello.txt && git commit -qm 'from {who}' && gt checkpoint -m 'wrote hello.txt' && gt done -m 'hello written'"
        )),
        Turn::Say("done".into()),
    ]
}

fn rig(t: &TestTown, agent: &str, image: &str, extra: &[&str]) -> std::path::PathBuf {
    let src = t.source_repo("api");
    let remote = t.dir.path().join("remote.git");
    git(
        t.dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    let mut args = vec![
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--agent",
        agent,
        "--image",
        image,
        "--network",
        "host",
        "--memory",
        "1g",
        "--remote",
        remote.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    t.ok(&args);
    remote
}

/// Everything a person or a program can see of the town holds no secret value.
fn assert_secret_nowhere(t: &TestTown, bead: &str) {
    let db = std::fs::read(t.root().join(".gt/town.db")).unwrap();
    assert!(
        !contains(&db, SECRET.as_bytes()),
        "the secret is in town.db"
    );
    if let Ok(wal) = std::fs::read(t.root().join(".gt/town.db-wal")) {
        assert!(
            !contains(&wal, SECRET.as_bytes()),
            "the secret is in the WAL"
        );
    }
    for args in [
        vec!["log", "--json"],
        vec!["rig", "show", "api", "--json"],
        vec!["bead", "show", bead, "--json"],
        vec!["peek", "--bead", bead],
        vec!["costs", "--json"],
    ] {
        let out = t.run(&args);
        assert!(
            !contains(&out.stdout, SECRET.as_bytes()) && !contains(&out.stderr, SECRET.as_bytes()),
            "gt {args:?} shows the secret"
        );
    }
    for f in walk(&t.root().join("transcripts")) {
        assert!(
            !contains(&std::fs::read(&f).unwrap(), SECRET.as_bytes()),
            "{}",
            f.display()
        );
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// While the agent runs, its container's configuration holds no secret value.
fn assert_secret_not_in_inspect(t: &TestTown) {
    let out = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={}", t.id)]);
    for c in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let i = docker(&["inspect", c]);
        assert!(
            !contains(&i.stdout, SECRET.as_bytes()),
            "docker inspect shows the secret"
        );
    }
}

#[test]
fn a_claude_rig_lands_real_claude_code_work_with_its_secret_kept_out_of_sight() {
    if !require_docker() {
        return;
    }
    if !npm_reachable() {
        eprintln!("skipped: npm cannot reach its registry");
        return;
    }
    let t = TestTown::new();
    let image = build(&t, "claude");
    let stub = Stub::anthropic(work_script("claude"));
    set_secret(&t, "ANTHROPIC_API_KEY", SECRET);
    let base = format!("ANTHROPIC_BASE_URL={}", stub.url());
    let remote = rig(
        &t,
        "claude",
        &image.0,
        &[
            "--env",
            &base,
            "--env",
            "CLAUDE_CODE_MAX_RETRIES=0",
            "--env",
            "API_TIMEOUT_MS=30000",
        ],
    );
    let id = t.bead("write hello.txt");
    let started = std::time::Instant::now();
    t.ok(&["sling", &id]);
    wait_for("the first model request", 60, || {
        (!stub.model_requests().is_empty()).then_some(())
    });
    eprintln!("sling to first model request: {:?}", started.elapsed());
    assert_secret_not_in_inspect(&t);
    t.patrol_until("the bead done", 120, |t| t.bead_status(&id) == "done");
    let mr = t.json(&["mq", "list", "--all"])[0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    let files = git(&remote, &["ls-tree", "--name-only", &mr]);
    assert!(files.lines().any(|f| f == "hello.txt"), "{files}");
    let show = t.json(&["bead", "show", &id]);
    assert!(
        show.to_string().contains("wrote hello.txt"),
        "the checkpoint: {show}"
    );
    let costs = t.json(&["costs"]);
    assert_eq!(costs[0]["dispatches"], 1, "{costs}");
    assert!(costs[0]["output_tokens"].as_i64().unwrap() > 0, "{costs}");
    assert!(costs[0]["cost_usd"].as_f64().unwrap() > 0.0, "{costs}");
    let out = t.ok(&["peek", "--bead", &id]);
    assert!(out.contains("\"type\":\"result\""), "the transcript: {out}");
    assert_secret_nowhere(&t, &id);
}

#[test]
fn a_codex_rig_lands_real_codex_work() {
    if !require_docker() {
        return;
    }
    if !npm_reachable() {
        eprintln!("skipped: npm cannot reach its registry");
        return;
    }
    let t = TestTown::new();
    let image = build(&t, "codex");
    let stub = Stub::openai(work_script("codex"));
    set_secret(&t, "OPENAI_API_KEY", SECRET);
    // The preset's command, with the stub as the model provider (Codex reads providers
    // from its config; `-c` sets them on the command line).
    let command = format!(
        "codex exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check \
         -c model=gpt-5.5 -c model_provider=stub -c model_providers.stub.name=stub \
         -c model_providers.stub.base_url={}/v1 -c model_providers.stub.env_key=OPENAI_API_KEY \
         -c model_providers.stub.wire_api=responses -c model_providers.stub.request_max_retries=0 \
         -c model_providers.stub.stream_max_retries=0 -c check_for_update_on_startup=false \
         \"$(gt prime)\" < /dev/null",
        stub.url()
    );
    let remote = rig(&t, "codex", &image.0, &["--command", &command]);
    let id = t.bead("write hello.txt");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 120, |t| t.bead_status(&id) == "done");
    let mr = t.json(&["mq", "list", "--all"])[0]["commit"]
        .as_str()
        .unwrap()
        .to_string();
    let files = git(&remote, &["ls-tree", "--name-only", &mr]);
    assert!(files.lines().any(|f| f == "hello.txt"), "{files}");
    let costs = t.json(&["costs"]);
    assert!(costs[0]["input_tokens"].as_i64().unwrap() > 0, "{costs}");
    assert_secret_nowhere(&t, &id);
}

#[test]
fn a_refusing_model_api_fails_the_dispatch_fast_with_the_reason_in_bead_show() {
    if !require_docker() {
        return;
    }
    if !npm_reachable() {
        eprintln!("skipped: npm cannot reach its registry");
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1\nretry_backoff = [\"0s\"]", "");
    let image = build(&t, "claude");
    let stub = Stub::refuse();
    set_secret(&t, "ANTHROPIC_API_KEY", SECRET);
    let base = format!("ANTHROPIC_BASE_URL={}", stub.url());
    rig(
        &t,
        "claude",
        &image.0,
        &[
            "--env",
            &base,
            "--env",
            "CLAUDE_CODE_MAX_RETRIES=0",
            "--env",
            "API_TIMEOUT_MS=10000",
        ],
    );
    let id = t.bead("doomed");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead to fail", 90, |t| t.bead_status(&id) == "failed");
    let show = t.json(&["bead", "show", &id]);
    let reason = show["dispatches"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("without done") && reason.contains("last output"),
        "{show}"
    );
    assert_secret_nowhere(&t, &id);
}

#[test]
fn a_model_api_that_never_answers_is_ended_by_the_stall_timeout() {
    if !require_docker() {
        return;
    }
    if !npm_reachable() {
        eprintln!("skipped: npm cannot reach its registry");
        return;
    }
    // Codex has no deadline of its own for a response that never starts: gt's is it.
    let t = TestTown::new();
    t.configure(
        "max_attempts = 1\nretry_backoff = [\"0s\"]",
        "stall_timeout = \"3s\"",
    );
    let image = build(&t, "codex");
    let stub = Stub::hang();
    set_secret(&t, "OPENAI_API_KEY", SECRET);
    let command = format!(
        "codex exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check \
         -c model=gpt-5.5 -c model_provider=stub -c model_providers.stub.name=stub \
         -c model_providers.stub.base_url={}/v1 -c model_providers.stub.env_key=OPENAI_API_KEY \
         -c model_providers.stub.wire_api=responses -c model_providers.stub.request_max_retries=0 \
         \"$(gt prime)\" < /dev/null",
        stub.url()
    );
    rig(&t, "codex", &image.0, &["--command", &command]);
    let id = t.bead("never answered");
    t.ok(&["sling", &id]);
    wait_for("the hung request", 60, || {
        (!stub.requests().is_empty()).then_some(())
    });
    t.patrol_until("the bead to fail", 60, |t| t.bead_status(&id) == "failed");
    let show = t.json(&["bead", "show", &id]);
    let reason = show["dispatches"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("stalled"), "{show}");
    assert_secret_nowhere(&t, &id);
}
