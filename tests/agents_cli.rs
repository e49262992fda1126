//! The real coding-agent CLIs (Claude Code and Codex, from npm) driven by a scripted
//! model API on loopback (tests/support/stub.rs): each edits a file, runs shell commands
//! and makes a git commit; each fails in bounded time when the API hangs or refuses.
//! On the host for now (no container); issue 11.
//!
//! ## What works (Claude Code 2.1.332, Codex 0.169.0, linux x86_64)
//!
//! Install (Node.js is not needed to run either; both ship a native binary in a
//! platform package that npm installs as an optional dependency):
//!
//! ```text
//! npm install --prefix DIR --no-audit --no-fund \
//!     @anthropic-ai/claude-code@2.1.332 @openai/codex@0.169.0
//! claude: DIR/node_modules/@anthropic-ai/claude-code-linux-x64/claude       (glibc)
//! codex:  DIR/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex
//!                                                                        (static, musl)
//! ```
//! Should the platform packages be missing (optional dependencies omitted), install them by
//! name: `@anthropic-ai/claude-code-linux-x64@2.1.332` and
//! `@openai/codex-linux-x64@npm:@openai/codex@0.169.0-linux-x64` (an npm alias).
//!
//! Claude Code, in the repository as cwd, as a non-root uid (it refuses
//! `--dangerously-skip-permissions` as root unless `IS_SANDBOX=1` is set), stdin closed:
//!
//! ```text
//! setpriv --reuid=10001 --regid=10001 --clear-groups \
//!   env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=<writable> TMPDIR=<writable> \
//!     ANTHROPIC_BASE_URL=http://127.0.0.1:PORT ANTHROPIC_API_KEY=sk-stub \
//!     CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 CLAUDE_CODE_MAX_RETRIES=0 \
//!     API_TIMEOUT_MS=60000 DISABLE_AUTOUPDATER=1 \
//!     GIT_AUTHOR_NAME=… GIT_AUTHOR_EMAIL=… GIT_COMMITTER_NAME=… GIT_COMMITTER_EMAIL=… \
//!   claude -p "PROMPT" --output-format stream-json --verbose --dangerously-skip-permissions
//! ```
//! It calls only `POST /v1/messages?beta=true` (streaming), one per model turn. Without
//! `API_TIMEOUT_MS` a server that never answers holds it for the SDK default of 600 s;
//! with `API_TIMEOUT_MS=5000` it exits 1 after ~5 s ("Request timed out"). Its last
//! stdout line is `{"type":"result", "is_error":…, "result":"<final text>", "usage":
//! {"input_tokens":…, "output_tokens":…}, "total_cost_usd":…, "num_turns":…}`; the cost
//! is priced by the CLI from the model it asked for (its default, `claude-opus-5-5`, when
//! none is given: 200 in / 40 out tokens print `"total_cost_usd":0.0016`). A refused
//! request (401) exits 1 at once with `is_error: true`.
//!
//! Codex, same uid, cwd, stdin closed (it otherwise waits on "Reading additional input
//! from stdin"), with `CODEX_HOME=<writable>/.codex` holding `config.toml`:
//!
//! ```text
//! model = "gpt-5.5"                 # a slug it knows: no "model metadata not found" item
//! model_provider = "stub"
//! check_for_update_on_startup = false
//! [model_providers.stub]
//! name = "stub"
//! base_url = "http://127.0.0.1:PORT/v1"
//! env_key = "OPENAI_API_KEY"
//! wire_api = "responses"
//! request_max_retries = 0
//! stream_max_retries = 0
//! stream_idle_timeout_ms = 30000
//! ```
//! ```text
//! setpriv --reuid=10001 --regid=10001 --clear-groups \
//!   env -i PATH=… HOME=<writable> TMPDIR=<writable> CODEX_HOME=<writable>/.codex \
//!     OPENAI_API_KEY=sk-stub GIT_AUTHOR_NAME=… (as above) \
//!   codex exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check "PROMPT"
//! ```
//! It calls only `POST /v1/responses` (SSE), one per model turn. Its shell tool in 0.169
//! is `exec_command` with arguments `{"cmd": "..."}` (unified exec in a PTY; not `shell`).
//! It exits 0 even when its commands fail. Its JSONL stdout ends with
//! `{"type":"turn.completed","usage":{"input_tokens":…,"output_tokens":…,…}}` (no cost), or
//! `{"type":"turn.failed",…}` with exit 1. `stream_idle_timeout_ms` bounds a stream that
//! stops mid-way (exit 1), but NOTHING bounds a request whose response headers never come:
//! against a server that accepts and never answers it waits forever, so gt must have its
//! own deadline for codex. With CODEX_HOME under /tmp it warns "Refusing to create helper
//! binaries under temporary dir" on stderr and carries on.
#![allow(dead_code)]

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::stub::{INPUT_TOKENS, OUTPUT_TOKENS, Stub, Turn};

const CLAUDE_VERSION: &str = "2.1.332";
const CODEX_VERSION: &str = "0.169.0";
/// The uid (and gid) the agents run as when the tests run as root.
const AGENT_UID: u32 = 10001;
/// A run that should succeed gets this long before it is killed.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// A run against a broken API must end (or is killed) within this.
const FAIL_DEADLINE: Duration = Duration::from_secs(60);

struct Clis {
    claude: PathBuf,
    codex: PathBuf,
}

/// (npm's platform suffix, Rust target triple) of this machine.
fn platform() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("linux-arm64", "aarch64-unknown-linux-musl"),
        _ => ("linux-x64", "x86_64-unknown-linux-musl"),
    }
}

fn binaries(dir: &Path) -> (PathBuf, PathBuf) {
    let (plat, triple) = platform();
    let nm = dir.join("node_modules");
    (
        nm.join(format!("@anthropic-ai/claude-code-{plat}/claude")),
        nm.join(format!("@openai/codex-{plat}/vendor/{triple}/bin/codex")),
    )
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The CLIs, installed once into `$GT_NPM_CACHE` (default /tmp/gt-npm-cli), one
/// directory per pinned version pair. `None` (the test skips) when npm is missing,
/// except under CI, where that fails the test.
fn clis() -> Option<&'static Clis> {
    static CLIS: OnceLock<Option<Clis>> = OnceLock::new();
    CLIS.get_or_init(install).as_ref()
}

fn install() -> Option<Clis> {
    let npm_ok = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !npm_ok {
        if under_ci() {
            panic!("CI=true but npm is not on PATH: the agent CLI tests need it");
        }
        eprintln!(
            "skipping: npm is not on PATH (the agent CLI tests install Claude Code and Codex with it)"
        );
        return None;
    }
    let root = std::env::var_os("GT_NPM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/gt-npm-cli"));
    let (plat, _) = platform();
    let dir = root.join(format!(
        "claude-code-{CLAUDE_VERSION}+codex-{CODEX_VERSION}-{plat}"
    ));
    let (claude, codex) = binaries(&dir);
    if claude.is_file() && codex.is_file() {
        return Some(Clis { claude, codex });
    }
    std::fs::create_dir_all(&root).unwrap();
    // Install beside the final directory and rename into place, so a concurrent or
    // interrupted install never leaves a half-filled cache directory behind.
    let staging = root.join(format!(".staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let started = Instant::now();
    npm_install(
        &staging,
        &[
            &format!("@anthropic-ai/claude-code@{CLAUDE_VERSION}"),
            &format!("@openai/codex@{CODEX_VERSION}"),
        ],
    );
    let (s_claude, s_codex) = binaries(&staging);
    if !s_claude.is_file() || !s_codex.is_file() {
        // Optional dependencies omitted (npm config): name the platform packages.
        npm_install(
            &staging,
            &[
                &format!("@anthropic-ai/claude-code-{plat}@{CLAUDE_VERSION}"),
                &format!("@openai/codex-{plat}@npm:@openai/codex@{CODEX_VERSION}-{plat}"),
            ],
        );
    }
    assert!(
        s_claude.is_file() && s_codex.is_file(),
        "npm install left no binaries at {s_claude:?} and {s_codex:?}"
    );
    eprintln!(
        "installed Claude Code {CLAUDE_VERSION} and Codex {CODEX_VERSION} in {:.1}s: \
         claude-code {} MiB, codex {} MiB on disk",
        started.elapsed().as_secs_f64(),
        disk_usage(&staging.join("node_modules/@anthropic-ai")) >> 20,
        disk_usage(&staging.join("node_modules/@openai")) >> 20,
    );
    let (claude, codex) = binaries(&dir);
    if !claude.is_file() || !codex.is_file() {
        // A cache directory left broken by hand: replace it.
        let _ = std::fs::remove_dir_all(&dir);
    }
    if std::fs::rename(&staging, &dir).is_err() {
        // Another process got there first.
        let _ = std::fs::remove_dir_all(&staging);
    }
    let (claude, codex) = binaries(&dir);
    assert!(claude.is_file() && codex.is_file(), "no CLIs in {dir:?}");
    Some(Clis { claude, codex })
}

fn npm_install(prefix: &Path, packages: &[&str]) {
    let out = Command::new("npm")
        .args(["install", "--prefix"])
        .arg(prefix)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .args(packages)
        .stdin(Stdio::null())
        .output()
        .expect("run npm");
    assert!(
        out.status.success(),
        "npm install {packages:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bytes on disk under `dir`, each hard-linked file counted once (Claude's package
/// hard-links its platform binary into bin/claude.exe).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if seen.insert((md.dev(), md.ino())) {
                total += md.blocks() * 512;
            }
        }
    }
    total
}

/// A temp git repository (one empty commit) with a home and a temp dir, owned by the
/// agent's uid when the tests run as root.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox { dir };
        for d in [sb.repo(), sb.home(), sb.tmp()] {
            std::fs::create_dir_all(d).unwrap();
        }
        git(&sb.repo(), &["init", "-q", "-b", "main"]);
        git(
            &sb.repo(),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "init",
            ],
        );
        if as_root() {
            chown_tree(sb.dir.path());
        }
        sb
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// The subject of HEAD's commit.
    fn head_subject(&self) -> String {
        git(&self.repo(), &["log", "-1", "--format=%s"])
            .trim()
            .to_string()
    }

    fn commits(&self) -> usize {
        git(&self.repo(), &["rev-list", "--count", "HEAD"])
            .trim()
            .parse()
            .unwrap()
    }

    /// Write the Codex config for this provider URL (before the run; owned by the agent).
    fn codex_home(&self, stub: &Stub, idle_ms: u64) -> PathBuf {
        let home = self.home().join(".codex");
        std::fs::create_dir_all(&home).unwrap();
        let config = format!(
            r#"model = "gpt-5.5"
model_provider = "stub"
check_for_update_on_startup = false

[model_providers.stub]
name = "stub"
base_url = "{}/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = {idle_ms}
"#,
            stub.url()
        );
        std::fs::write(home.join("config.toml"), config).unwrap();
        if as_root() {
            chown_tree(&home);
        }
        home
    }
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown_tree(path: &Path) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{AGENT_UID}:{AGENT_UID}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {path:?}");
}

/// git as the test's own user, on a repository the agent's uid may own.
fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "safe.directory=*", "-C"])
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Run {
    /// `None` when the run outlived its deadline and was killed.
    status: Option<ExitStatus>,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The stdout lines that are JSON objects.
    fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "status {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Run `program args` in the sandbox's repository, as the agent's uid when root, with a
/// clean environment plus `env`; killed at `deadline`.
fn run_agent(
    sb: &Sandbox,
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    deadline: Duration,
) -> Run {
    let mut cmd = if as_root() {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={AGENT_UID}"))
            .arg(format!("--regid={AGENT_UID}"))
            .arg("--clear-groups")
            .arg(program);
        c
    } else {
        Command::new(program)
    };
    let out_path = sb.dir.path().join("agent.stdout");
    let err_path = sb.dir.path().join("agent.stderr");
    cmd.args(args)
        .current_dir(sb.repo())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", sb.home())
        .env("TMPDIR", sb.tmp())
        .env("LANG", "C.UTF-8")
        .env("GIT_AUTHOR_NAME", "agent")
        .env("GIT_AUTHOR_EMAIL", "agent@gt.invalid")
        .env("GIT_COMMITTER_NAME", "agent")
        .env("GIT_COMMITTER_EMAIL", "agent@gt.invalid")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        // Files, not pipes: nothing has to drain them while the run is polled.
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn the agent CLI");
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        elapsed: started.elapsed(),
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn run_claude(
    clis: &Clis,
    sb: &Sandbox,
    stub: &Stub,
    deadline: Duration,
    api_timeout_ms: u64,
) -> Run {
    run_agent(
        sb,
        &clis.claude,
        &[
            "-p",
            "Make the commit the task asks for.",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ],
        &[
            ("ANTHROPIC_BASE_URL", stub.url()),
            ("ANTHROPIC_API_KEY", "sk-stub".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
            ("API_TIMEOUT_MS", api_timeout_ms.to_string()),
            ("DISABLE_AUTOUPDATER", "1".into()),
        ],
        deadline,
    )
}

fn run_codex(clis: &Clis, sb: &Sandbox, stub: &Stub, deadline: Duration, idle_ms: u64) -> Run {
    let codex_home = sb.codex_home(stub, idle_ms);
    run_agent(
        sb,
        &clis.codex,
        &[
            "exec",
            "--json",
            "--dangerously-bypass-approvals-and-sandbox",
            "--skip-git-repo-check",
            "Make the commit the task asks for.",
        ],
        &[
            ("CODEX_HOME", codex_home.display().to_string()),
            ("OPENAI_API_KEY", "sk-stub".into()),
        ],
        deadline,
    )
}

fn commit_script(who: &str) -> Vec<Turn> {
    vec![
        Turn::Shell(format!(
            "echo hello > hello.txt && git add hello.txt && git commit -qm 'from {who}'"
        )),
        Turn::Say("done".into()),
    ]
}

/// A run that ended by itself, unsuccessfully, before its deadline, and left no commit.
fn assert_failed_cleanly(what: &str, run: &Run, sb: &Sandbox) {
    let st = run
        .status
        .unwrap_or_else(|| panic!("{what}: still running at the deadline\n{}", run.describe()));
    assert!(!st.success(), "{what}: exited 0\n{}", run.describe());
    assert_eq!(sb.commits(), 1, "{what}: made a commit\n{}", run.describe());
}

#[test]
fn claude_edits_runs_and_commits_through_the_stub() {
    let Some(clis) = clis() else { return };
    let sb = Sandbox::new();
    let stub = Stub::anthropic(commit_script("claude"));
    let run = run_claude(clis, &sb, &stub, RUN_DEADLINE, 60_000);
    eprintln!("claude: start to exit (commit made) in {:?}", run.elapsed);
    assert!(
        run.status.is_some_and(|s| s.success()),
        "claude failed\n{}",
        run.describe()
    );
    assert_eq!(sb.head_subject(), "from claude", "{}", run.describe());
    assert_eq!(
        std::fs::read_to_string(sb.repo().join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(stub.remaining(), 0, "script not played out");

    let reqs = stub.model_requests();
    assert_eq!(reqs.len(), 2, "one request per turn: {reqs:?}");
    assert!(reqs[0].path.starts_with("/v1/messages"), "{}", reqs[0].path);
    let first = reqs[0].json();
    assert_eq!(first["stream"], true);
    assert!(
        first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "Bash"),
        "Bash tool offered"
    );
    // The tool's result comes back in the next request, tied to the stub's tool_use id.
    let second = reqs[1].json();
    let last = second["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let result = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "tool_result")
        .unwrap_or_else(|| panic!("no tool_result in {last}"));
    assert_eq!(result["tool_use_id"], "toolu_stub_0");
    assert_ne!(result["is_error"], true, "{result}");

    // The final stream-json line: the answer, the summed usage, the CLI's own cost.
    let events = run.events();
    let res = events
        .iter()
        .rev()
        .find(|e| e["type"] == "result")
        .unwrap_or_else(|| panic!("no result line\n{}", run.describe()));
    assert_eq!(res["is_error"], false, "{res}");
    assert_eq!(res["result"], "done");
    assert_eq!(res["num_turns"], 2);
    assert_eq!(res["usage"]["input_tokens"], 2 * INPUT_TOKENS);
    assert_eq!(res["usage"]["output_tokens"], 2 * OUTPUT_TOKENS);
    let cost = res["total_cost_usd"].as_f64().expect("total_cost_usd");
    eprintln!("claude: total_cost_usd {cost} for model {}", first["model"]);
    assert!(cost > 0.0, "{res}");
}

#[test]
fn codex_edits_runs_and_commits_through_the_stub() {
    let Some(clis) = clis() else { return };
    let sb = Sandbox::new();
    let stub = Stub::openai(commit_script("codex"));
    let run = run_codex(clis, &sb, &stub, RUN_DEADLINE, 30_000);
    eprintln!("codex: start to exit (commit made) in {:?}", run.elapsed);
    assert!(
        run.status.is_some_and(|s| s.success()),
        "codex failed\n{}",
        run.describe()
    );
    assert_eq!(sb.head_subject(), "from codex", "{}", run.describe());
    assert_eq!(
        std::fs::read_to_string(sb.repo().join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(stub.remaining(), 0, "script not played out");

    let reqs = stub.model_requests();
    assert_eq!(reqs.len(), 2, "one request per turn: {reqs:?}");
    assert_eq!(reqs[0].path, "/v1/responses");
    assert_eq!(reqs[0].json()["stream"], true);
    let second = reqs[1].json();
    let output = second["input"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call_output")
        .unwrap_or_else(|| panic!("no function_call_output in {second}"))
        .clone();
    assert_eq!(output["call_id"], "call_stub_0");
    let text = output["output"].to_string();
    assert!(text.contains("exited with code 0"), "{text}");

    // codex exits 0 even when its commands fail: the JSONL says what happened.
    let events = run.events();
    let cmd = events
        .iter()
        .find(|e| e["type"] == "item.completed" && e["item"]["type"] == "command_execution")
        .unwrap_or_else(|| panic!("no command_execution\n{}", run.describe()));
    assert_eq!(cmd["item"]["exit_code"], 0, "{cmd}");
    let msg = events
        .iter()
        .find(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
        .unwrap_or_else(|| panic!("no agent_message\n{}", run.describe()));
    assert_eq!(msg["item"]["text"], "done");
    let done = events
        .iter()
        .rev()
        .find(|e| e["type"] == "turn.completed")
        .unwrap_or_else(|| panic!("no turn.completed\n{}", run.describe()));
    assert_eq!(done["usage"]["input_tokens"], 2 * INPUT_TOKENS);
    assert_eq!(done["usage"]["output_tokens"], 2 * OUTPUT_TOKENS);
}

#[test]
fn claude_gives_up_on_an_api_that_never_answers() {
    let Some(clis) = clis() else { return };
    let sb = Sandbox::new();
    let stub = Stub::hang();
    let run = run_claude(clis, &sb, &stub, FAIL_DEADLINE, 5_000);
    eprintln!(
        "claude against a hung API: {:?} after {:?}",
        run.status, run.elapsed
    );
    assert_failed_cleanly("claude, hung API", &run, &sb);
    assert!(!stub.requests().is_empty(), "claude never asked");
}

#[test]
fn codex_gives_up_on_a_stream_that_stalls() {
    let Some(clis) = clis() else { return };
    let sb = Sandbox::new();
    let stub = Stub::stall();
    let run = run_codex(clis, &sb, &stub, FAIL_DEADLINE, 3_000);
    eprintln!(
        "codex against a stalled stream: {:?} after {:?}",
        run.status, run.elapsed
    );
    assert_failed_cleanly("codex, stalled stream", &run, &sb);
    assert!(
        run.events().iter().any(|e| e["type"] == "turn.failed"),
        "{}",
        run.describe()
    );
}

/// Codex has no deadline for response headers (`stream_idle_timeout_ms` starts with the
/// stream): against an API that accepts and never answers it waits on. The caller's
/// deadline is what ends it; this test is that deadline, and checks nothing was done.
#[test]
fn codex_against_an_api_that_never_answers_is_ended_by_the_deadline() {
    let Some(clis) = clis() else { return };
    let sb = Sandbox::new();
    let stub = Stub::hang();
    let run = run_codex(clis, &sb, &stub, Duration::from_secs(15), 3_000);
    eprintln!(
        "codex against a hung API: {:?} after {:?}",
        run.status, run.elapsed
    );
    if let Some(st) = run.status {
        assert!(!st.success(), "exited 0\n{}", run.describe());
    }
    assert_eq!(sb.commits(), 1, "made a commit\n{}", run.describe());
    assert!(!stub.requests().is_empty(), "codex never asked");
}

#[test]
fn both_clis_fail_fast_when_the_api_refuses() {
    let Some(clis) = clis() else { return };
    let sb = Sandbox::new();
    let stub = Stub::refuse();
    let run = run_claude(clis, &sb, &stub, FAIL_DEADLINE, 60_000);
    eprintln!("claude refused: {:?} after {:?}", run.status, run.elapsed);
    assert_failed_cleanly("claude, refused", &run, &sb);
    let res = run
        .events()
        .into_iter()
        .rev()
        .find(|e| e["type"] == "result")
        .unwrap_or_else(|| panic!("no result line\n{}", run.describe()));
    assert_eq!(res["is_error"], true, "{res}");

    let sb = Sandbox::new();
    let run = run_codex(clis, &sb, &stub, FAIL_DEADLINE, 30_000);
    eprintln!("codex refused: {:?} after {:?}", run.status, run.elapsed);
    assert_failed_cleanly("codex, refused", &run, &sb);
}
