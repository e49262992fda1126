//! gt's benchmarks: whole-process timings of the real binary against real SQLite, git
//! and Docker. `cargo bench` runs all; `cargo bench -- status` runs those whose name
//! contains "status". Targets (issue notes): `gt status` < 20 ms with 50 rigs and
//! 10,000 beads; sling ≤ 1.3 × (git worktree add + docker run -d); ingestion ≥ 5,000
//! requests/s; a patrol pass over 100 agents < 300 ms with a constant number of
//! runtime calls; with `gt patrol --watch`, `gt done` → bead done and `docker kill` →
//! re-dispatch ≤ 1 s each; landing 20 queued merge requests ≤ 1.5 × the same git (and
//! gate container) operations done by a shell script; a patrol pass over 100 tasks of a
//! real one-node Swarm makes as many Docker Engine API calls as one over 10 (counted on
//! the engine's socket; `cargo bench -- swarm`, as root). `cargo bench -- remote`: sling
//! → the agent's first request received through `gt serve` in clone mode, on the worker
//! of a real 2-node Swarm and on a single engine (no target yet).

use gt::state::{beads, rigs};
use gt::town::Town;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn gt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gt"))
}

fn run(town: &Path, args: &[&str]) -> String {
    let out = gt().args(args).env("GT_TOWN", town).output().expect("gt");
    assert!(
        out.status.success(),
        "gt {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Median and min of `n` runs of `f`.
fn time(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    (v[n / 2], v[0])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn source_repo(dir: &Path) -> PathBuf {
    let p = dir.join("src");
    std::fs::create_dir_all(&p).unwrap();
    let git = |args: &[&str]| {
        assert!(
            Command::new("git")
                .current_dir(&p)
                .args(["-c", "user.name=b", "-c", "user.email=b@b"])
                .args(args)
                .status()
                .unwrap()
                .success()
        )
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(p.join("README"), "bench\n").unwrap();
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", "init"]);
    p
}

/// A rig row for seeding a database directly (no clone: the benches time reads).
fn rig_row(name: &str, source: &str, max_polecats: i64, now: i64) -> rigs::Rig {
    rigs::Rig {
        name: name.into(),
        source: source.into(),
        remote: None,
        default_branch: "main".into(),
        image: "gt-agent:latest".into(),
        command: "true".into(),
        memory: 1 << 30,
        cpus: 1.0,
        pids: 512,
        network: "default".into(),
        max_polecats,
        created_at: now,
        version: 1,
        agent: "custom".into(),
        env: Default::default(),
        secrets: Vec::new(),
        merge: "off".into(),
        test_command: None,
        merge_style: "merge".into(),
        gate_secrets: false,
        digest: false,
        placement: Vec::new(),
    }
}

fn bench_status(tmp: &Path) {
    let root = tmp.join("status-town");
    gt::town::init::init(&root).unwrap();
    let mut town = Town::open_at(root.clone()).unwrap();
    let now = gt::util::now_ms();
    town.db
        .write(|tx| {
            for r in 0..50 {
                let rig = rig_row(&format!("rig{r:02}"), "/nowhere", 4, now);
                rigs::insert(tx, &rig).unwrap();
            }
            for i in 0..10_000 {
                let status = beads::STATUSES[i % beads::STATUSES.len()];
                let b = beads::Bead {
                    id: format!("rig{:02}-{i:05}", i % 50),
                    rig: format!("rig{:02}", i % 50),
                    title: format!("bead number {i}"),
                    body: "a body of modest length, like most bead bodies are".into(),
                    status: status.into(),
                    queued: false,
                    attempts: 0,
                    branch: None,
                    created_at: now + i as i64,
                    updated_at: now,
                    version: 1,
                };
                beads::insert(tx, &b).unwrap();
            }
            tx.event("bench.seeded", "town", serde_json::json!({}))
        })
        .unwrap();
    drop(town);
    let (med, min) = time(30, || {
        run(&root, &["status"]);
    });
    println!(
        "status: `gt status`, 50 rigs, 10,000 beads: median {:.1} ms, min {:.1} ms (target < 20 ms)",
        ms(med),
        ms(min)
    );
    let (med, min) = time(30, || {
        run(&root, &["bead", "list", "--rig", "rig07", "--json"]);
    });
    println!(
        "status: `gt bead list --rig rig07 --json` (200 beads): median {:.1} ms, min {:.1} ms",
        ms(med),
        ms(min)
    );
    let (med, min) = time(10, || {
        run(&root, &["bead", "list", "--json"]);
    });
    println!(
        "status: `gt bead list --json` (10,000 beads): median {:.1} ms, min {:.1} ms",
        ms(med),
        ms(min)
    );
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn town_with_rig(tmp: &Path, name: &str, max: u32) -> (PathBuf, String) {
    let root = tmp.join(name);
    let src = source_repo(&tmp.join(format!("{name}-src")));
    let made = gt::town::init::init(&root).unwrap();
    run(
        &root,
        &[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--command",
            "sleep 600",
            "--memory",
            "64m",
            "--max-polecats",
            &max.to_string(),
        ],
    );
    (root, made.town_id)
}

fn cleanup(town_id: &str) {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label=gt.town={town_id}")]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut a = vec!["rm", "-f"];
        a.extend(ids);
        docker(&a);
    }
}

fn bench_sling(tmp: &Path) {
    let (root, id) = town_with_rig(tmp, "sling-town", 50);
    // gt sling of one bead, 10 times (fresh bead each time).
    let mut gt_times = Vec::new();
    for i in 0..10 {
        let b = run(&root, &["bead", "create", "--rig", "api", &format!("b{i}")])
            .trim()
            .to_string();
        let t = Instant::now();
        run(&root, &["sling", &b]);
        gt_times.push(t.elapsed());
    }
    // The floor: git worktree add -b + docker run -d of the same image, 10 times.
    let repo = root.join("rigs/api/repo");
    let mut floor = Vec::new();
    for i in 0..10 {
        let wt = tmp.join(format!("floor-wt-{i}"));
        let t = Instant::now();
        assert!(
            Command::new("git")
                .current_dir(&repo)
                .args(["worktree", "add", "-q", "-b", &format!("floor/{i}")])
                .arg(&wt)
                .status()
                .unwrap()
                .success()
        );
        docker(&[
            "run",
            "-d",
            "--label",
            &format!("gt.town={id}"),
            "-v",
            &format!("{0}:{0}", wt.display()),
            "gt-agent:latest",
            "sleep",
            "600",
        ]);
        floor.push(t.elapsed());
    }
    gt_times.sort();
    floor.sort();
    let (g, f) = (gt_times[5], floor[5]);
    println!(
        "sling: one bead: median {:.0} ms; floor (git worktree add -b + docker run -d): median {:.0} ms; ratio {:.2} (target ≤ 1.3)",
        ms(g),
        ms(f),
        g.as_secs_f64() / f.as_secs_f64()
    );
    cleanup(&id);

    let (root, id) = town_with_rig(tmp, "sling20-town", 20);
    let ids: Vec<String> = (0..20)
        .map(|i| {
            run(&root, &["bead", "create", "--rig", "api", &format!("b{i}")])
                .trim()
                .to_string()
        })
        .collect();
    let mut args = vec!["sling"];
    args.extend(ids.iter().map(String::as_str));
    let t = Instant::now();
    run(&root, &args);
    println!(
        "sling: 20 beads in one `gt sling`: {:.0} ms wall",
        ms(t.elapsed())
    );
    cleanup(&id);
}

fn bench_ingest(tmp: &Path) {
    use gt::agent::request::{Body, Request, submit};
    let root = tmp.join("ingest-town");
    gt::town::init::init(&root).unwrap();
    let mut town = Town::open_at(root.clone()).unwrap();
    let now = gt::util::now_ms();
    let src = source_repo(&tmp.join("ingest-src"));
    let mut agents = Vec::new();
    town.db
        .write(|tx| {
            rigs::insert(tx, &rig_row("api", &src.display().to_string(), 200, now))
            .unwrap();
            for a in 0..200 {
                let name = format!("p{a:03}");
                let bead = format!("api-{a:03}");
                let agent = format!("api/{name}");
                let token = format!("token{a}");
                tx.execute(
                    "INSERT INTO beads (id, rig, title, status, created_at, updated_at) VALUES (?1, 'api', 't', 'in_progress', ?2, ?2)",
                    rusqlite::params![bead, now],
                )
                .unwrap();
                gt::state::agents::insert(tx, "api", &name, now).unwrap();
                let d = gt::state::dispatches::insert(tx, &agent, &bead, 1, &token, &format!("polecat/{name}/{bead}"), now).unwrap();
                tx.execute(
                    "UPDATE agents SET state = 'running', bead = ?2, branch = ?3, generation = 1, dispatch = ?4 WHERE id = ?1",
                    rusqlite::params![agent, bead, format!("polecat/{name}/{bead}"), d],
                )
                .unwrap();
                agents.push((name, agent, token));
            }
            tx.event("bench.seeded", "town", serde_json::json!({}))
        })
        .unwrap();
    drop(town);
    for (name, agent, token) in &agents {
        let outbox = root.join("agents/api").join(name).join("outbox");
        std::fs::create_dir_all(&outbox).unwrap();
        for i in 0..50 {
            let body = if i % 2 == 0 {
                Body::Checkpoint {
                    note: format!("step {i}"),
                    head: None,
                }
            } else {
                Body::Mail {
                    to: "mayor".into(),
                    subject: format!("note {i}"),
                    body: "progress".into(),
                    mail_id: None,
                }
            };
            let req = Request {
                id: format!("{name}r{i:03}"),
                agent: agent.clone(),
                generation: 1,
                token: token.clone(),
                created_at: now + i,
                body,
            };
            submit(&outbox, &req).unwrap();
        }
    }
    let t = Instant::now();
    let out = run(&root, &["--json", "status"]);
    let el = t.elapsed();
    assert!(out.contains("town_id"));
    let left: usize = agents
        .iter()
        .map(|(n, _, _)| {
            std::fs::read_dir(root.join("agents/api").join(n).join("outbox"))
                .unwrap()
                .count()
        })
        .sum();
    assert_eq!(left, 0, "requests left unread");
    println!(
        "ingest: 10,000 requests (200 agents) in one whole-process pass: {:.0} ms, {:.0} requests/s (target ≥ 5,000/s)",
        ms(el),
        10_000.0 / el.as_secs_f64()
    );
}

fn bench_patrol(tmp: &Path) {
    for n in [10usize, 100] {
        let (root, id) = town_with_rig(tmp, &format!("patrol-town-{n}"), n as u32);
        let ids: Vec<String> = (0..n)
            .map(|i| {
                run(&root, &["bead", "create", "--rig", "api", &format!("b{i}")])
                    .trim()
                    .to_string()
            })
            .collect();
        for chunk in ids.chunks(25) {
            let mut args = vec!["sling"];
            args.extend(chunk.iter().map(String::as_str));
            run(&root, &args);
        }
        let mut calls = 0;
        let (med, min) = time(10, || {
            let out = run(&root, &["--json", "patrol"]);
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert!(v["deaths"].as_array().unwrap().is_empty());
            calls = v["runtime_calls"].as_u64().unwrap();
        });
        println!(
            "patrol: a pass over {n} running agents: median {:.0} ms, min {:.0} ms, {calls} runtime call(s) in the pass (target < 300 ms at 100)",
            ms(med),
            ms(min)
        );
        cleanup(&id);
    }
}

/// A unix-socket proxy in front of a Docker engine that counts the HTTP requests passing
/// through it (by their request lines), so a bench can say how many Engine API calls a
/// gt command made, whatever gt's own counters say.
struct CountingProxy {
    sock: PathBuf,
    /// `METHOD /path` of every request seen (API version prefix and query left out).
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl CountingProxy {
    fn start(sock: &Path, engine: &Path) -> CountingProxy {
        let listener = UnixListener::bind(sock).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2, engine) = (seen.clone(), stop.clone(), engine.to_path_buf());
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                // No engine: dropping the client makes gt's call fail, as it would.
                let Ok(up) = UnixStream::connect(&engine) else {
                    continue;
                };
                let (c2, u2, seen) = (
                    client.try_clone().unwrap(),
                    up.try_clone().unwrap(),
                    seen2.clone(),
                );
                std::thread::spawn(move || forward_counting(client, up, &seen));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (u2, c2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        });
        CountingProxy {
            sock: sock.to_path_buf(),
            seen,
            stop,
            accept: Some(accept),
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// The requests seen since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept so it sees the flag.
        let _ = UnixStream::connect(&self.sock);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// Client → engine: each request line is recorded before its bytes are passed on, so
/// every request is counted by the time its answer can reach the client.
fn forward_counting(mut from: UnixStream, mut to: UnixStream, seen: &Mutex<Vec<String>>) {
    let mut buf = [0u8; 16 * 1024];
    let mut line = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                if let Some(r) = request_line(&line) {
                    seen.lock().unwrap().push(r);
                }
                line.clear();
            } else if line.len() < 1024 {
                line.push(b);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `GET /v1.41/tasks?filters=… HTTP/1.1` → `GET /tasks`; None for any other line.
fn request_line(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut f = line.split(' ');
    let (method, target, version) = (f.next()?, f.next()?, f.next()?);
    let known = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];
    if f.next().is_some()
        || !known.contains(&method)
        || !target.starts_with('/')
        || !version.starts_with("HTTP/1.")
    {
        return None;
    }
    let path = target.split('?').next()?;
    let path = match path.strip_prefix("/v1.") {
        Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
        None => path,
    };
    Some(format!("{method} {path}"))
}

/// `GET /tasks ×1, GET /nodes ×1, …`: what a pass asked of the engine.
fn breakdown(seen: &[String]) -> String {
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in seen {
        *by.entry(r.as_str()).or_default() += 1;
    }
    by.iter()
        .map(|(r, n)| format!("{r} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A Docker Swarm of nodes in network namespaces (tests/support/swarm.sh); `down` runs
/// on drop, after a panic too.
struct Swarm {
    dir: PathBuf,
    /// The manager's engine, `unix://…/n1/d.sock`.
    manager: String,
    /// The host's address on the swarm's network (where agents reach `gt serve`).
    host_addr: String,
}

impl Swarm {
    fn script() -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/swarm.sh")
    }

    /// `n` nodes; node 1 is the manager.
    fn up(dir: &Path, n: usize) -> Swarm {
        // The guard exists before `up` runs: a failed `up` is taken down too.
        let mut s = Swarm {
            dir: dir.to_path_buf(),
            manager: String::new(),
            host_addr: String::new(),
        };
        let out = Command::new("bash")
            .arg(Swarm::script())
            .args(["up", dir.to_str().unwrap(), &n.to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "swarm.sh up: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.manager = stdout
            .lines()
            .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                ["node1", "manager", _, sock] => Some(sock.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("swarm.sh up named no manager: {stdout}"));
        s.host_addr = stdout
            .lines()
            .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                ["host", addr, _] => Some(addr.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("swarm.sh up named no host address: {stdout}"));
        s
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.manager)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {args:?} on the swarm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(Swarm::script())
            .args(["down", self.dir.to_str().unwrap()])
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("swarm.sh down: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("swarm.sh down: {e}"),
        }
    }
}

/// A swarm in network namespaces needs root, iproute2 and util-linux.
fn swarm_possible() -> bool {
    use std::os::unix::fs::MetadataExt;
    let root_user = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let tools = ["ip", "nsenter", "unshare"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    root_user && tools
}

/// `gt ARGS` in `town` against the engine at `host`.
fn run_on(town: &Path, host: &str, args: &[&str]) -> String {
    let out = gt()
        .args(args)
        .env("GT_TOWN", town)
        .env("DOCKER_HOST", host)
        .output()
        .expect("gt");
    assert!(
        out.status.success(),
        "gt {args:?} (DOCKER_HOST={host}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One `gt --json patrol` pass against `host`, which must find every agent alive;
/// returns gt's own count of its runtime calls.
fn swarm_pass(root: &Path, host: &str) -> u64 {
    let out = run_on(root, host, &["--json", "patrol"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["ran"] == true, "the pass did not run: {v}");
    assert!(
        v["deaths"].as_array().unwrap().is_empty() && v["errors"].as_array().unwrap().is_empty(),
        "a pass over live tasks found deaths or errors: {v}"
    );
    v["runtime_calls"].as_u64().unwrap()
}

/// A patrol pass over 10 and then 100 agents running as tasks of a real one-node Swarm
/// (tests/support/swarm.sh; root, iproute2 and the agent image needed): the wall time of
/// one `gt patrol`, and the Docker Engine API requests it makes, counted by a proxy on
/// the manager's socket. Those must not grow with the number of tasks.
fn bench_swarm(tmp: &Path) {
    if !swarm_possible() {
        println!(
            "(swarm benchmark skipped: a swarm in network namespaces needs root, iproute2 and util-linux)"
        );
        return;
    }
    let image = std::env::var("GT_TEST_IMAGE").unwrap_or_else(|_| "gt-agent:latest".into());
    let swarm = Swarm::up(&tmp.join("swarm"), 1);
    let host = swarm.manager.clone();
    let engine = PathBuf::from(host.strip_prefix("unix://").unwrap());

    // The town, made by the real binary from a gt.toml that names the swarm runtime.
    let root = tmp.join("swarm-town");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("gt.toml"),
        format!("[defaults]\nimage = \"{image}\"\n\n[runtime]\nkind = \"swarm\"\n"),
    )
    .unwrap();
    let made: serde_json::Value = serde_json::from_str(&run_on(
        &root,
        &host,
        &["--json", "init", root.to_str().unwrap()],
    ))
    .unwrap();
    let town_id = made["town_id"].as_str().unwrap().to_string();
    let src = source_repo(&tmp.join("swarm-src"));
    run_on(
        &root,
        &host,
        &[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--image",
            &image,
            "--command",
            "sleep 600",
            "--memory",
            "32m",
            "--max-polecats",
            "100",
        ],
    );

    let proxy = CountingProxy::start(&tmp.join("swarm-proxy.sock"), &engine);
    let label = format!("label=gt.town={town_id}");
    let mut slung = 0;
    let mut calls = Vec::new();
    for n in [10usize, 100] {
        let ids: Vec<String> = (slung..n)
            .map(|i| {
                run_on(
                    &root,
                    &host,
                    &["bead", "create", "--rig", "api", &format!("b{i}")],
                )
                .trim()
                .to_string()
            })
            .collect();
        for chunk in ids.chunks(25) {
            let mut args = vec!["sling"];
            args.extend(chunk.iter().map(String::as_str));
            run_on(&root, &host, &args);
        }
        slung = n;
        // Every task's container running on the node (a task on its way counts as
        // running for gt already; the pass is timed over tasks that really run).
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let running = swarm
                .docker(&["ps", "-q", "--filter", &label, "--filter", "status=running"])
                .lines()
                .count();
            if running == n {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bench swarm: {running} of {n} task containers running after 300 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let agents: serde_json::Value =
            serde_json::from_str(&run_on(&root, &host, &["--json", "polecat", "list"])).unwrap();
        let live = agents
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "running")
            .count();
        assert_eq!(live, n, "agents running per gt: {agents}");
        // A first pass settles whatever the slings left for patrol.
        swarm_pass(&root, &host);

        let mut own = 0;
        let (med, min) = time(7, || own = swarm_pass(&root, &host));
        // The same pass through the counting proxy, three times: the count is stable.
        proxy.take();
        let counted: Vec<Vec<String>> = (0..3)
            .map(|_| {
                swarm_pass(&root, &proxy.host());
                proxy.take()
            })
            .collect();
        assert!(
            counted.iter().all(|c| c.len() == counted[0].len()),
            "the same pass made different numbers of API calls: {:?}",
            counted.iter().map(|c| breakdown(c)).collect::<Vec<_>>()
        );
        let api = counted[0].len();
        println!(
            "swarm: a patrol pass over {n} running swarm tasks: median {:.0} ms, min {:.0} ms, {api} Engine API calls ({}), {own} runtime call(s) by gt's count",
            ms(med),
            ms(min),
            breakdown(&counted[0])
        );
        calls.push((n, api));
    }
    let (small, large) = (calls[0], calls[1]);
    assert!(
        large.1 <= small.1,
        "the pass's Engine API calls grow with the tasks: {} at {}, {} at {}",
        small.1,
        small.0,
        large.1,
        large.0
    );
    println!(
        "swarm: Engine API calls per pass: {} at {} tasks, {} at {} tasks (must not grow)",
        small.1, small.0, large.1, large.0
    );
    drop(proxy);
    drop(swarm);
}

/// `gt serve` as a child process, killed on drop (after a panic too).
struct Serve {
    child: std::process::Child,
    /// Its stdout, held open for as long as it runs.
    _out: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Serve {
    /// `gt --json serve` for `town`, once it says where it listens.
    fn start(town: &Path, host: &str) -> Serve {
        use std::io::BufRead;
        let child = gt()
            .args(["--json", "serve"])
            .env("GT_TOWN", town)
            .env("DOCKER_HOST", host)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The guard exists before the wait: a serve that fails to start is killed too.
        let mut s = Serve { child, _out: None };
        let mut out = std::io::BufReader::new(s.child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.contains("listen"), "gt serve said {line:?}");
        s._out = Some(out);
        s
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes a town's containers on a single engine on drop, panic or not (`cleanup`
/// would panic inside a panic).
struct TownContainers {
    id: String,
    host: String,
}

impl Drop for TownContainers {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(args)
                .env("DOCKER_HOST", &self.host)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let label = format!("label=gt.town={}", self.id);
        if let Some(ids) = docker(&["ps", "-aq", "--filter", &label]) {
            let mut a = vec!["rm", "-f"];
            a.extend(ids.split_whitespace());
            if a.len() > 2 {
                docker(&a);
            }
        }
    }
}

/// A free TCP port on `addr` (taken, then let go: `gt serve` binds it next).
fn free_port(addr: &str) -> u16 {
    let l = std::net::TcpListener::bind((addr, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// The request files in rig api's host spool: `agents/api/*/outbox/*.json`.
fn spooled_requests(town: &Path) -> Vec<PathBuf> {
    let Ok(agents) = std::fs::read_dir(town.join("agents/api")) else {
        return Vec::new();
    };
    agents
        .flatten()
        .filter_map(|a| std::fs::read_dir(a.path().join("outbox")).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect()
}

/// An agent that sends one request at once, then idles.
const CHECKPOINT_AT_ONCE: &str = "gt checkpoint -m hello; sleep 600";

/// A clone-mode town at `root` on the engine at `host` (`runtime`: docker or swarm), its
/// `gt serve` listening on `addr` (where the agents reach it), and rig api whose agents
/// checkpoint at once; made by the real binary.
fn clone_town(
    tmp: &Path,
    name: &str,
    host: &str,
    runtime: &str,
    addr: &str,
) -> (PathBuf, String, Serve) {
    let image = std::env::var("GT_TEST_IMAGE").unwrap_or_else(|_| "gt-agent:latest".into());
    let root = tmp.join(name);
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port(addr);
    std::fs::write(
        root.join("gt.toml"),
        format!(
            "[defaults]\nimage = \"{image}\"\n[runtime]\nkind = \"{runtime}\"\nworkspace = \"clone\"\n\
             [serve]\nlisten = \"{addr}:{port}\"\nurl = \"https://{addr}:{port}\"\n"
        ),
    )
    .unwrap();
    let made: serde_json::Value = serde_json::from_str(&run_on(
        &root,
        host,
        &["--json", "init", root.to_str().unwrap()],
    ))
    .unwrap();
    let town_id = made["town_id"].as_str().unwrap().to_string();
    let serve = Serve::start(&root, host);
    let src = source_repo(&tmp.join(format!("{name}-src")));
    run_on(
        &root,
        host,
        &[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--image",
            &image,
            "--command",
            CHECKPOINT_AT_ONCE,
            "--memory",
            "64m",
            "--max-polecats",
            "50",
            "--network",
            "host",
        ],
    );
    (root, town_id, serve)
}

/// `n` beads slung one at a time: for each, the time from just before `gt sling` starts
/// until its agent's first request (the checkpoint) is in the host spool, written there
/// by `gt serve`. Polled every 10 ms; nothing else reads the spool meanwhile (no gt
/// command runs, so nothing ingests).
/// Returns, per bead, that time and the time `gt sling` itself took.
fn sling_to_first_request(
    root: &Path,
    host: &str,
    n: usize,
    what: &str,
) -> Vec<(Duration, Duration)> {
    (0..n)
        .map(|i| {
            let b = run_on(
                root,
                host,
                &["bead", "create", "--rig", "api", &format!("r{i}")],
            )
            .trim()
            .to_string();
            let before = spooled_requests(root);
            let t = Instant::now();
            run_on(root, host, &["sling", &b]);
            let sling = t.elapsed();
            let deadline = t + Duration::from_secs(60);
            let (took, file) = loop {
                let new = spooled_requests(root)
                    .into_iter()
                    .find(|p| !before.contains(p));
                if let Some(p) = new {
                    break (t.elapsed(), p);
                }
                assert!(
                    Instant::now() < deadline,
                    "bench remote ({what}): no request from the agent of {b} within 60 s\n{}",
                    run_on(root, host, &["log", "-n", "20"])
                );
                std::thread::sleep(Duration::from_millis(10));
            };
            // It is the checkpoint, from an agent holding this bead.
            let req: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
            assert_eq!(req["kind"], "checkpoint", "{}: {req}", file.display());
            let agents: serde_json::Value =
                serde_json::from_str(&run_on(root, host, &["--json", "polecat", "list"])).unwrap();
            assert!(
                agents
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["bead"] == b.as_str()
                        && req["agent"] == format!("api/{}", a["name"].as_str().unwrap())),
                "{} is not from the agent of {b}: {req}\n{agents}",
                file.display()
            );
            (took, sling)
        })
        .collect()
}

fn report(what: &str, samples: Vec<(Duration, Duration)>) {
    let (mut v, mut sling): (Vec<Duration>, Vec<Duration>) = samples.into_iter().unzip();
    v.sort();
    sling.sort();
    println!(
        "remote: {what}: sling → first request in the host spool: median {:.0} ms, min {:.0} ms, max {:.0} ms ({} beads; `gt sling` itself: median {:.0} ms)",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(v[v.len() - 1]),
        v.len(),
        ms(sling[sling.len() / 2])
    );
}

/// Sling → the agent's first request received, in clone mode (nothing of the host
/// mounted): service created, task scheduled on the worker of a real 2-node Swarm (the
/// manager drained), container started, box fetched over TLS from `gt serve`, branch
/// cloned, the checkpoint relayed and written into the host spool. The same on the
/// single engine at DOCKER_HOST (docker runtime, clone mode) for comparison.
fn bench_remote(tmp: &Path) {
    const N: usize = 5;
    // The single engine first: it needs no root.
    {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let (root, id, serve) = clone_town(tmp, "remote-docker", &host, "docker", "127.0.0.1");
        let _containers = TownContainers {
            id,
            host: host.clone(),
        };
        report(
            "docker runtime, one engine, clone mode",
            sling_to_first_request(&root, &host, N, "docker"),
        );
        drop(serve);
    }

    if !swarm_possible() {
        println!(
            "(remote swarm benchmark skipped: a swarm in network namespaces needs root, iproute2 and util-linux)"
        );
        return;
    }
    let swarm = Swarm::up(&tmp.join("remote-swarm"), 2);
    let host = swarm.manager.clone();
    // Tasks go to node 2 only: the measured dispatch crosses the swarm's network.
    swarm.docker(&["node", "update", "--availability", "drain", "node1"]);
    let (root, _id, serve) = clone_town(tmp, "remote-swarm-town", &host, "swarm", &swarm.host_addr);
    let times = sling_to_first_request(&root, &host, N, "swarm");
    // Every task ran on the worker.
    let on = |node: &str| {
        swarm
            .docker(&["node", "ps", node, "--format", "{{.CurrentState}}"])
            .lines()
            .filter(|s| s.starts_with("Running"))
            .count()
    };
    let (on1, on2) = (on("node1"), on("node2"));
    assert!(
        on1 == 0 && on2 == N,
        "tasks running: {on1} on node1 (drained), {on2} on node2; want 0 and {N}"
    );
    report(
        "swarm runtime, 2 nodes, task on the worker (manager drained), clone mode",
        times,
    );
    drop(serve);
    drop(swarm);
}

/// An agent that commits and checkpoints, then waits for `/gt/release` and says done.
const HELD_AGENT: &str = "gt prime >/dev/null; echo work > work.txt; git add work.txt; \
    git commit -q -m work; gt checkpoint -m ready; while [ ! -e /gt/release ]; do sleep 0.02; done; gt done -m ok";

/// Instant hand-over with `gt patrol --watch --interval 60s` running: from the agent's
/// `gt done` to the bead `done` (rig without remote), and from `docker kill` of an
/// agent's container to its re-dispatch (the new container started). Target ≤ 1 s each.
fn bench_watch(tmp: &Path) {
    let (root, id) = town_with_rig(tmp, "watch-town", 20);
    run(&root, &["rig", "set", "api", "--command", HELD_AGENT]);
    let null = || std::process::Stdio::null();
    let mut watch = gt()
        .args(["patrol", "--watch", "--interval", "60s"])
        .env("GT_TOWN", &root)
        .stdout(null())
        .stderr(null())
        .spawn()
        .unwrap();
    let town = Town::open_at(root.clone()).unwrap();
    let conn = town.db.conn();
    let poll = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "bench watch: no {what} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let status = |b: &str| beads::get(conn, b).unwrap().unwrap().status;
    let started = |b: &str, n: usize| {
        let ds = gt::state::dispatches::for_bead(conn, b).unwrap();
        ds.len() == n && ds[n - 1].container_id.is_some()
    };
    let agent_of = |b: &str| {
        gt::state::agents::holding(conn, b)
            .unwrap()
            .map(|a| a.name)
            .unwrap()
    };
    let (mut done, mut killed) = (Vec::new(), Vec::new());
    for i in 0..7 {
        // gt done → bead done.
        let b = run(&root, &["bead", "create", "--rig", "api", &format!("w{i}")])
            .trim()
            .to_string();
        run(&root, &["sling", &b]);
        poll("running agent", &|| status(&b) == "in_progress");
        let release = root
            .join("agents/api")
            .join(agent_of(&b))
            .join("box/release");
        // Its checkpoint ingested: it now polls for the release.
        poll("checkpoint", &|| {
            let d = gt::state::dispatches::for_bead(conn, &b).unwrap()[0].id;
            !gt::state::checkpoints::for_dispatch(conn, d)
                .unwrap()
                .is_empty()
        });
        let t = Instant::now();
        std::fs::write(&release, "").unwrap();
        poll("bead done", &|| status(&b) == "done");
        done.push(t.elapsed());
        poll("polecat released", &|| {
            gt::state::agents::holding(conn, &b).unwrap().is_none()
        });
        let _ = std::fs::remove_file(&release);

        // docker kill → re-dispatched (new container started).
        let k = run(&root, &["bead", "create", "--rig", "api", &format!("k{i}")])
            .trim()
            .to_string();
        run(&root, &["sling", &k]);
        poll("running agent", &|| started(&k, 1));
        let c = gt::state::dispatches::for_bead(conn, &k).unwrap()[0]
            .container_id
            .clone()
            .unwrap();
        let t = Instant::now();
        docker(&["kill", &c]);
        poll("re-dispatch", &|| started(&k, 2));
        killed.push(t.elapsed());
        // Let it finish, so the next round starts from an idle crew.
        let release = root
            .join("agents/api")
            .join(agent_of(&k))
            .join("box/release");
        std::fs::write(&release, "").unwrap();
        poll("bead done", &|| status(&k) == "done");
        poll("polecat released", &|| {
            gt::state::agents::holding(conn, &k).unwrap().is_none()
        });
        let _ = std::fs::remove_file(&release);
    }
    let _ = watch.kill();
    let _ = watch.wait();
    done.sort();
    killed.sort();
    let n = done.len();
    println!(
        "watch: gt done → bead done: median {:.0} ms, max {:.0} ms (target ≤ 1000 ms; interval 60 s)",
        ms(done[n / 2]),
        ms(done[n - 1])
    );
    println!(
        "watch: docker kill → re-dispatched: median {:.0} ms, max {:.0} ms (target ≤ 1000 ms; interval 60 s)",
        ms(killed[n / 2]),
        ms(killed[n - 1])
    );
    cleanup(&id);
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let tmp = tempfile::tempdir().unwrap();
    if want("status") {
        bench_status(tmp.path());
    }
    let docker_ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !docker_ok {
        println!(
            "(no Docker engine: sling and patrol benchmarks skipped; `bash dev.sh bench` starts one)"
        );
    }
    if want("ingest") {
        bench_ingest(tmp.path());
    }
    if docker_ok && want("sling") {
        bench_sling(tmp.path());
    }
    if docker_ok && want("patrol") {
        bench_patrol(tmp.path());
    }
    if docker_ok && want("land") {
        bench_land(tmp.path());
    }
    if docker_ok && want("watch") {
        bench_watch(tmp.path());
    }
    if docker_ok && want("swarm") {
        bench_swarm(tmp.path());
    }
    if docker_ok && want("remote") {
        bench_remote(tmp.path());
    }
}

/// `n` branches `polecat/b/api-bNN` in `repo`, each one commit adding its own file on
/// top of main (made with git2: set-up, not timed).
fn make_branches(repo: &Path, n: usize) -> Vec<(String, String)> {
    let r = git2::Repository::open(repo).unwrap();
    let main = r.find_branch("main", git2::BranchType::Local).unwrap();
    let base = main.get().peel_to_commit().unwrap();
    let sig = git2::Signature::now("bench", "bench@example.com").unwrap();
    (0..n)
        .map(|i| {
            let bead = format!("api-b{i:02}");
            let blob = r.blob(format!("change {i}\n").as_bytes()).unwrap();
            let mut tb = r.treebuilder(Some(&base.tree().unwrap())).unwrap();
            tb.insert(format!("file-{i}.txt"), blob, 0o100644).unwrap();
            let tree = r.find_tree(tb.write().unwrap()).unwrap();
            let c = r
                .commit(
                    None,
                    &sig,
                    &sig,
                    &format!("{bead}: change {i}"),
                    &tree,
                    &[&base],
                )
                .unwrap();
            let branch = format!("polecat/b/{bead}");
            r.branch(&branch, &r.find_commit(c).unwrap(), false)
                .unwrap();
            (bead, c.to_string())
        })
        .collect()
}

fn bare_clone(src: &Path, to: &Path) {
    assert!(
        Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(src)
            .arg(to)
            .status()
            .unwrap()
            .success()
    );
}

/// 20 queued merge requests landed by `gt mq run` (merge style, with and without a
/// trivial gate), against a shell script doing the same git operations (merge-tree,
/// commit-tree, a compare-and-swap push, update-ref; and for the gate, a checkout and a
/// `docker run` of the same image).
fn bench_land(tmp: &Path) {
    const N: usize = 20;
    let image = std::env::var("GT_TEST_IMAGE").unwrap_or_else(|_| "gt-agent:latest".into());
    for gate in [None, Some("true")] {
        let name = if gate.is_some() { "land-gate" } else { "land" };
        let src = source_repo(&tmp.join(format!("{name}-src")));
        let root = tmp.join(format!("{name}-town"));
        let made = gt::town::init::init(&root).unwrap();
        let remote = tmp.join(format!("{name}-remote.git"));
        bare_clone(&src, &remote);
        let mut args = vec![
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--remote",
            remote.to_str().unwrap(),
            "--merge",
            "auto",
            "--image",
            &image,
            "--memory",
            "64m",
        ];
        if let Some(g) = gate {
            args.extend(["--test-command", g]);
        }
        run(&root, &args);
        let repo = root.join("rigs/api/repo");
        let made_branches = make_branches(&repo, N);
        let mut town = Town::open_at(root.clone()).unwrap();
        let now = gt::util::now_ms();
        town.db
            .write(|tx| {
                for (i, (bead, commit)) in made_branches.iter().enumerate() {
                    let branch = format!("polecat/b/{bead}");
                    beads::insert(
                        tx,
                        &beads::Bead {
                            id: bead.clone(),
                            rig: "api".into(),
                            title: format!("change {i}"),
                            body: String::new(),
                            status: "done".into(),
                            queued: false,
                            attempts: 1,
                            branch: Some(branch.clone()),
                            created_at: now,
                            updated_at: now,
                            version: 1,
                        },
                    )
                    .unwrap();
                    let mr = gt::state::merge_requests::NewMr {
                        bead,
                        rig: "api",
                        branch: &branch,
                        commit,
                        pushed_to: None,
                        target: "main",
                        state: gt::state::merge_requests::MrState::Queued,
                    };
                    gt::state::merge_requests::insert(tx, &mr, now + i as i64).unwrap();
                }
                tx.event("bench.seeded", "api", serde_json::json!({}))
            })
            .unwrap();
        drop(town);
        let t = Instant::now();
        run(&root, &["mq", "run"]);
        let ours = t.elapsed();
        let landed = run(&root, &["--json", "mq", "list", "--state", "merged"]);
        let landed: serde_json::Value = serde_json::from_str(&landed).unwrap();
        assert_eq!(landed.as_array().unwrap().len(), N, "not all landed");
        cleanup(&made.town_id);

        // The floor: the same operations by a shell script, on a twin repository.
        let twin = tmp.join(format!("{name}-twin"));
        assert!(
            Command::new("git")
                .args(["clone", "-q"])
                .arg(&src)
                .arg(&twin)
                .status()
                .unwrap()
                .success()
        );
        let twin_remote = tmp.join(format!("{name}-twin-remote.git"));
        bare_clone(&src, &twin_remote);
        let branches = make_branches(&twin, N);
        let gate_line = match gate {
            Some(g) => format!(
                "rm -rf \"$SCRATCH\" && mkdir -p \"$SCRATCH\" && git archive \"$c\" | tar -x -C \"$SCRATCH\" && docker run --rm --network none -v \"$SCRATCH:/work\" -w /work {image} sh -c '{g}' >/dev/null"
            ),
            None => ":".into(),
        };
        let script = format!(
            "set -e\ncd \"$1\"\nfor b in {list}; do\n  old=$(git rev-parse main)\n  tree=$(git merge-tree --write-tree main \"polecat/b/$b\")\n  c=$(git -c user.name=b -c user.email=b@b commit-tree \"$tree\" -p main -p \"polecat/b/$b\" -m \"Merge $b\")\n  {gate_line}\n  git push -q --force-with-lease=refs/heads/main:$old \"$2\" \"$c:refs/heads/main\"\n  git ls-remote \"$2\" refs/heads/main >/dev/null\n  git update-ref refs/heads/main \"$c\" \"$old\"\ndone\n",
            list = branches
                .iter()
                .map(|(b, _)| b.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        );
        let t = Instant::now();
        let ok = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .arg("floor")
            .arg(&twin)
            .arg(&twin_remote)
            .env("SCRATCH", tmp.join(format!("{name}-scratch")))
            .status()
            .unwrap()
            .success();
        let floor = t.elapsed();
        assert!(ok, "the floor script failed");
        println!(
            "land {N} MRs{}: gt mq run {:.0} ms ({:.0} ms each), floor {:.0} ms, ratio {:.2}",
            if gate.is_some() {
                " with a trivial gate"
            } else {
                " without a gate"
            },
            ms(ours),
            ms(ours) / N as f64,
            ms(floor),
            ours.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
