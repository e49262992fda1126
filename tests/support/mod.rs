//! Shared test support: a temp town driven through the real binary, git fixtures,
//! and the Docker engine check (loud under CI, never a silent skip).
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `api/furiosa` → `furiosa`.
pub fn polecat_name(agent: &str) -> &str {
    agent.split_once('/').map(|(_, n)| n).unwrap_or(agent)
}

pub fn gt_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gt"))
}

/// A town in its own temp dir; its containers are removed (by label) on drop.
pub struct TestTown {
    pub dir: tempfile::TempDir,
    pub id: String,
    /// The engine its gt commands talk to, when not the test's own (`on_engine`).
    docker_host: Option<String>,
}

impl TestTown {
    pub fn new() -> TestTown {
        TestTown::new_with_prefix(".tmp")
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("town")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(gt_bin());
        c.env("GT_TOWN", self.root())
            .env_remove("GT_AGENT")
            .env("NO_COLOR", "1");
        if let Some(h) = &self.docker_host {
            c.env("DOCKER_HOST", h);
        }
        c
    }

    /// This town's gt commands talk to the engine at `host` (a private engine, a swarm
    /// manager) instead of the test's.
    pub fn on_engine(mut self, host: &str) -> TestTown {
        self.docker_host = Some(host.to_string());
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Start gt in the background with piped output, and extra environment.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        let mut c = std::process::Command::new(gt_bin());
        c.args(args)
            .env("GT_TOWN", self.root())
            .env_remove("GT_AGENT")
            .envs(self.docker_host.iter().map(|h| ("DOCKER_HOST", h)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().unwrap()
    }

    /// Add rig `api` from a fresh repo with the test image and `command`.
    pub fn rig(&self, command: &str, extra: &[&str]) {
        let src = self.source_repo("api");
        let image = test_image();
        let mut args = vec![
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--image",
            &image,
            "--command",
            command,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gt {}: exit {:?}\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Run expecting failure with `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "gt {}: expected exit {code}\nstdout: {}\nstderr: {stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// The worktree of polecat `agent` (`api/furiosa`) of rig api.
    pub fn worktree(&self, agent: &str) -> PathBuf {
        self.root()
            .join("rigs/api/polecats")
            .join(polecat_name(agent))
    }

    /// A git repository with one commit on `main`, inside this town's temp dir.
    pub fn source_repo(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("src").join(name);
        make_repo(&p);
        p
    }

    pub fn event_count(&self) -> usize {
        self.json(&["log", "-n", "100000"])
            .as_array()
            .unwrap()
            .len()
    }
}

impl Drop for TestTown {
    fn drop(&mut self) {
        if !self.id.is_empty() && docker_reachable() {
            remove_town_containers(&self.id);
        }
    }
}

pub fn make_repo(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    git(p, &["init", "-q", "-b", "main"]);
    std::fs::write(p.join("README"), "hello\n").unwrap();
    git(p, &["add", "README"]);
    git(p, &["commit", "-q", "-m", "init"]);
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        // Worktrees belong to the agents' uid when the tests run as root.
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(["-c", "safe.directory=*"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn docker_reachable() -> bool {
    std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Tests that need Docker call this first. Under CI a missing engine fails the test.
pub fn require_docker() -> bool {
    if docker_reachable() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "CI=true but no Docker engine answers (DOCKER_HOST={:?})",
            std::env::var("DOCKER_HOST")
        );
    }
    eprintln!("skipping: no Docker engine (run `bash dev.sh test` to start one)");
    false
}

pub fn test_image() -> String {
    std::env::var("GT_TEST_IMAGE").unwrap_or_else(|_| "gt-agent:latest".into())
}

pub fn docker(args: &[&str]) -> Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .unwrap()
}

/// `docker inspect` of every container of the town (running or not).
pub fn containers(t: &TestTown) -> Vec<serde_json::Value> {
    let out = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={}", t.id)]);
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if ids.is_empty() {
        return vec![];
    }
    let mut args = vec!["inspect"];
    args.extend(ids.iter().map(String::as_str));
    serde_json::from_slice(&docker(&args).stdout).unwrap()
}

pub fn remove_town_containers(town_id: &str) {
    let out = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={town_id}")]);
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        docker(&args);
    }
}

/// Deadlines are failure bounds, never synchronisation: they are stretched on a slow or
/// loaded machine (CI with 2 cores runs 4 tests at once) at no cost to a passing run.
/// `GT_TEST_DEADLINE_SCALE` overrides the factor (default 3).
pub fn deadline_secs(secs: u64) -> u64 {
    let scale: u64 = std::env::var("GT_TEST_DEADLINE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    secs * scale.max(1)
}

/// Poll `f` until it returns Some, or panic after `secs` (scaled) seconds naming `what`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let secs = deadline_secs(secs);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The scripted agent, with knobs (`AGENT_SLEEP=5`, `AGENT_FAIL=1`, …) set in front.
pub fn scripted_agent(knobs: &str) -> String {
    let script = include_str!("scripted-agent.sh");
    format!("{knobs}\n{script}")
}

impl TestTown {
    /// A rig `api` from a fresh repo, with a bare remote; returns the remote's path.
    pub fn rig_with_remote(&self, command: &str, extra: &[&str]) -> PathBuf {
        let remote = self.dir.path().join("remote.git");
        let out = std::process::Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&remote)
            .output()
            .unwrap();
        assert!(out.status.success());
        let mut args = vec!["--memory", "256m", "--remote", remote.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.rig(command, &args);
        remote
    }

    pub fn bead(&self, title: &str) -> String {
        self.ok(&["bead", "create", "--rig", "api", title])
            .trim()
            .to_string()
    }

    /// Containers of this town in `status` (running, exited, …).
    pub fn containers_in(&self, status: &str) -> usize {
        let out = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=gt.town={}", self.id),
            "--filter",
            &format!("status={status}"),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count()
    }

    pub fn all_containers(&self) -> usize {
        let out = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=gt.town={}", self.id),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .count()
    }

    pub fn wait_exited(&self, n: usize) {
        wait_for(&format!("{n} exited container(s)"), 60, || {
            (self.containers_in("exited") >= n).then_some(())
        });
    }

    pub fn mayor_mail(&self) -> Vec<serde_json::Value> {
        self.json(&["mail", "inbox", "--as", "mayor"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// The mayor's messages whose id starts with `prefix`.
    pub fn mayor_mail_id(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.mayor_mail()
            .into_iter()
            .filter(|m| m["id"].as_str().unwrap().starts_with(prefix))
            .collect()
    }

    /// The mayor's messages whose subject contains `text`.
    pub fn mayor_mail_subject(&self, text: &str) -> Vec<serde_json::Value> {
        self.mayor_mail()
            .into_iter()
            .filter(|m| m["subject"].as_str().unwrap().contains(text))
            .collect()
    }

    pub fn doctor_clean(&self) {
        let out = self.run(&["--json", "doctor"]);
        assert!(
            out.status.success(),
            "doctor: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl TestTown {
    /// Replace gt.toml with the defaults plus `overrides` (full `[section]` tables).
    pub fn configure(&self, defaults: &str, patrol: &str) {
        let text = format!(
            "[defaults]\nimage = \"{}\"\n{defaults}\n[patrol]\n{patrol}\n",
            test_image()
        );
        std::fs::write(self.root().join("gt.toml"), text).unwrap();
    }

    /// gt.toml for a town whose agents run on a Docker Swarm (`[runtime] kind = "swarm"`),
    /// with extra `[defaults]` lines.
    pub fn configure_swarm(&self, defaults: &str) {
        let text = format!(
            "[defaults]\nimage = \"{}\"\n{defaults}\n[runtime]\nkind = \"swarm\"\n",
            test_image()
        );
        std::fs::write(self.root().join("gt.toml"), text).unwrap();
    }

    pub fn patrol_json(&self) -> serde_json::Value {
        let out = self.run(&["--json", "patrol"]);
        assert!(out.status.success(), "patrol: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn bead_status(&self, id: &str) -> String {
        self.json(&["bead", "show", id])["status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn dispatches(&self, id: &str) -> Vec<serde_json::Value> {
        self.json(&["bead", "show", id])["dispatches"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Run patrols until `done` holds, or panic after `secs`.
    /// On a timeout the panic carries what the town says of itself (status, beads,
    /// agents, the last patrol's answer and the event log), so a CI failure explains itself.
    pub fn patrol_until(&self, what: &str, secs: u64, mut done: impl FnMut(&TestTown) -> bool) {
        let secs = deadline_secs(secs);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let last = self.run(&["patrol", "--json"]);
            if done(self) {
                return;
            }
            if std::time::Instant::now() >= deadline {
                let text = |args: &[&str]| {
                    let out = self.run(args);
                    format!(
                        "$ gt {}\n{}{}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    )
                };
                panic!(
                    "timed out after {secs}s waiting for {what}\nlast patrol: {}{}\n{}\n{}\n{}\n{}",
                    String::from_utf8_lossy(&last.stdout),
                    String::from_utf8_lossy(&last.stderr),
                    text(&["status"]),
                    text(&["bead", "list"]),
                    text(&["polecat", "list"]),
                    text(&["log", "-n", "150"]),
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    pub fn running_containers(&self) -> Vec<String> {
        let out = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=gt.town={}", self.id),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }
}

/// A Docker engine of the test's own (socket and data root in a temp dir), for tests
/// that stop and restart the engine without disturbing the others.
pub struct PrivateEngine {
    pub dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    /// A single-node swarm in a network namespace of its own (see `start_swarm`).
    swarm: bool,
}

impl PrivateEngine {
    pub fn start() -> PrivateEngine {
        PrivateEngine::start_with(false)
    }

    /// A private engine that is a single-node swarm manager, in a network namespace of
    /// its own: the networks and interfaces Swarm makes (docker_gwbridge, ingress) live
    /// and die there, and leave nothing on the host's network.
    pub fn start_swarm() -> PrivateEngine {
        PrivateEngine::start_with(true)
    }

    /// `docker ARGS` on this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .output()
            .unwrap()
    }

    fn start_with(swarm: bool) -> PrivateEngine {
        let dir = tempfile::Builder::new()
            .prefix("gt-engine")
            .tempdir_in("/tmp")
            .unwrap();
        let mut e = PrivateEngine {
            dir,
            child: None,
            swarm,
        };
        e.boot();
        if swarm {
            let out = e.docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
            assert!(out.status.success(), "docker swarm init: {out:?}");
        }
        // The agent image, copied from the main engine.
        let save = std::process::Command::new("docker")
            .args(["save", &test_image()])
            .output()
            .unwrap();
        assert!(save.status.success(), "docker save: {save:?}");
        let mut load = std::process::Command::new("docker")
            .args(["load", "-q"])
            .env("DOCKER_HOST", e.host())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        load.stdin.take().unwrap().write_all(&save.stdout).unwrap();
        assert!(load.wait().unwrap().success());
        e
    }

    pub fn host(&self) -> String {
        format!("unix://{}/d.sock", self.dir.path().display())
    }

    fn boot(&mut self) {
        let d = self.dir.path();
        // In a swarm's own network namespace (loopback up, nothing else), dockerd is
        // exec'd by the shell: the child's pid is the engine's.
        let mut command = if self.swarm {
            let mut c = std::process::Command::new("unshare");
            c.args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec dockerd \"$@\"",
                "sh",
            ]);
            c
        } else {
            std::process::Command::new("dockerd")
        };
        let child = command
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("d.pid"))
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.join("dockerd.log")).unwrap())
            .spawn()
            .expect("dockerd");
        self.child = Some(child);
        let host = self.host();
        wait_for("the private engine", 60, || {
            std::process::Command::new("docker")
                .args(["info"])
                .env("DOCKER_HOST", &host)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| ())
        });
    }

    /// Stop the engine (SIGTERM, as `systemctl stop docker` does) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if self.child.is_some() && self.swarm {
            let out = self.docker(&["service", "ls", "-q"]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                self.docker(&["service", "rm", id]);
            }
            self.docker(&["swarm", "leave", "--force"]);
        }
        if self.child.is_some() {
            let host = self.host();
            let out = std::process::Command::new("docker")
                .args(["ps", "-aq"])
                .env("DOCKER_HOST", &host)
                .output();
            if let Ok(o) = out {
                for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = std::process::Command::new("docker")
                        .args(["rm", "-f", id])
                        .env("DOCKER_HOST", &host)
                        .output();
                }
            }
        }
        self.stop();
        if self.swarm {
            // An engine outside the first network namespace keeps its own mounted at
            // exec/netns/default (and a sandbox or two); the engine is gone, so are they.
            let exec = self.dir.path().join("exec/netns");
            if let Ok(entries) = std::fs::read_dir(&exec) {
                for e in entries.flatten() {
                    let _ = std::process::Command::new("umount")
                        .arg("-l")
                        .arg(e.path())
                        .status();
                }
            }
        }
    }
}

/// A gt process paused at a named step (`GT_TEST_PAUSE_AT`, failpoints builds), with
/// its stderr read line by line so a test knows when it got there.
pub struct Paused {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub stderr: Vec<String>,
}

impl TestTown {
    /// Start `gt ARGS` so that it pauses at `step` (until a signal, or until `release`
    /// exists), and return once it has got there.
    pub fn paused_at(&self, args: &[&str], step: &str, release: Option<&Path>) -> Paused {
        self.paused_at_env(args, step, release, &[])
    }

    /// `paused_at`, with extra environment (`DOCKER_HOST` of a private engine, say).
    pub fn paused_at_env(
        &self,
        args: &[&str],
        step: &str,
        release: Option<&Path>,
        extra: &[(&str, &str)],
    ) -> Paused {
        let mut env = vec![
            ("GT_TEST_PAUSE_AT", step.to_string()),
            ("NO_COLOR", "1".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        if let Some(r) = release {
            env.push(("GT_TEST_PAUSE_RELEASE", r.display().to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut child = self.spawn(args, &env);
        let err = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut p = Paused {
            child,
            lines,
            stderr: Vec::new(),
        };
        let secs = deadline_secs(30);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match p.lines.recv_timeout(left) {
                Ok(l) => {
                    let at = l.contains(&format!("paused at {step}"));
                    p.stderr.push(l);
                    if at {
                        return p;
                    }
                }
                Err(_) => panic!(
                    "gt {args:?} did not pause at {step} within {secs}s; stderr: {:?}",
                    p.stderr
                ),
            }
        }
    }
}

impl Paused {
    /// Send a signal (`INT`, `TERM`) to the paused process.
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Wait for it to exit (within a deadline); its exit code and all of its stderr.
    pub fn finish(mut self) -> (i32, String) {
        let secs = deadline_secs(60);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gt did not exit within {secs}s; stderr: {:?}", self.stderr);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        // The reader thread ends at EOF, once the process has exited.
        while let Ok(l) = self.lines.recv_timeout(std::time::Duration::from_secs(5)) {
            self.stderr.push(l);
        }
        (status.code().unwrap_or(-1), self.stderr.join("\n"))
    }
}

impl TestTown {
    /// A town whose directory path starts with `prefix` (e.g. characters that Docker's
    /// `src:dst` bind strings would split on).
    pub fn new_with_prefix(prefix: &str) -> TestTown {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let out = Command::new(gt_bin())
            .arg("init")
            .arg(dir.path().join("town"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gt init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut t = TestTown {
            dir,
            id: String::new(),
            docker_host: None,
        };
        t.id = t.json(&["status"])["town_id"].as_str().unwrap().to_string();
        t
    }
}

/// The log (subjects) of the branch an agent sees in its container: its private ref and
/// objects (the rig repository's objects as alternates). None before it has one.
pub fn agent_branch_log(root: &Path, rig: &str, polecat: &str, branch: &str) -> Option<String> {
    let private = root.join("agents").join(rig).join(polecat).join("git");
    let head = std::fs::read_to_string(private.join("common/refs/heads").join(branch)).ok()?;
    let repo = root.join("rigs").join(rig).join("repo");
    let out = std::process::Command::new("git")
        .current_dir(&repo)
        .env("GIT_OBJECT_DIRECTORY", private.join("objects"))
        .env(
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
            format!("\"{}\"", repo.join(".git/objects").display()),
        )
        .args(["log", "--format=%s", head.trim()])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
pub mod clone;
pub mod stub;

/// A tmpfs of `size` mounted for one test, unmounted (lazily) when dropped.
pub struct SmallDisk(pub PathBuf);

impl SmallDisk {
    /// None when this process may not mount (not root): the test is skipped, except
    /// under CI=true, where tests run as root and a skip would hide a failure.
    pub fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok && std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but a tmpfs cannot be mounted (tests run as root in CI)");
        }
        ok.then(|| SmallDisk(at.to_path_buf()))
    }

    pub fn resize(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// An image built by a test, `NAME:<pid>-<n>` (unique even between tests of one binary
/// running at once: one test's drop never untags another's image), removed when dropped.
pub struct Image(pub String);

impl Image {
    pub fn new(name: &str) -> Image {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Image(format!("{name}:{}-{n}", std::process::id()))
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        docker(&["rmi", "-f", &self.0]);
    }
}

/// Whether npm reaches its registry (the real agent CLIs come from it).
pub fn npm_reachable() -> bool {
    std::process::Command::new("npm")
        .args(["view", "@openai/codex", "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A rig `api` whose remote is a bare clone of its source (so the remote has `main`),
/// with `command` and `extra` settings; returns the remote's path.
pub fn landing_rig(t: &TestTown, command: &str, extra: &[&str]) -> std::path::PathBuf {
    let src = t.source_repo("api");
    let remote = t.root().parent().unwrap().join("remote.git");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(&remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let image = test_image();
    let mut args = vec![
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
        "--max-polecats",
        "4",
        "--remote",
        remote.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    t.ok(&args);
    remote
}

/// Rig `api` from the local repository at `src` (no --remote): `command`, 256m of
/// memory, landing after review (the default), and `extra` settings.
pub fn local_rig_at(t: &TestTown, src: &Path, command: &str, extra: &[&str]) {
    let image = test_image();
    let mut args = vec![
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
    ];
    args.extend_from_slice(extra);
    t.ok(&args);
}

/// The state of `bead`'s merge request, as `gt mq show` tells it ("" when it says none).
pub fn mr_state(t: &TestTown, bead: &str) -> String {
    t.json(&["mq", "show", bead])["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Sling `title`, wait until its work is done, approve it, and patrol until it merged.
pub fn land_one(t: &TestTown, title: &str) -> String {
    let id = t.bead(title);
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    t.ok(&["mq", "approve", &id]);
    t.patrol_until("its merge request merged", 90, |t| {
        mr_state(t, &id) == "merged"
    });
    id
}
