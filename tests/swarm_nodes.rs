//! A real 3-node Docker Swarm on this machine (tests/support/swarm.sh): each node a
//! `dockerd` in its own network namespace. The harness itself is tested here: the
//! swarm comes up with every node Ready, a job runs one task on each node, a killed
//! worker is marked Down by the manager and comes back Ready when started again, and
//! `down` (with tasks still running) leaves nothing behind. Needs root
//! (namespaces) and the agent image in the engine at DOCKER_HOST (copied to the nodes).

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::*;

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/swarm.sh")
}

/// Root is needed for namespaces; under CI its absence fails, never a silent skip.
fn require_root() -> bool {
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but this test runs as a non-root user: a swarm in namespaces needs root");
    }
    eprintln!("skipping: a swarm in network namespaces needs root");
    false
}

/// One swarm at a time in this file: each is three engines, and two at once on two
/// cores only measure the machine.
static ONE_SWARM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A swarm brought up by the script; `down` runs on drop whatever happened.
struct Swarm {
    dir: PathBuf,
    /// The engine socket of node k at index k-1 (node 1 is the manager).
    nodes: Vec<String>,
    /// The host's link into the swarm's network, and its address there.
    host_link: String,
    host_addr: String,
    down: bool,
}

impl Swarm {
    fn up(dir: &Path, n: usize) -> (Swarm, Duration) {
        // The guard exists before `up` runs: a failed `up` is cleaned up too.
        let mut s = Swarm {
            dir: dir.to_path_buf(),
            nodes: Vec::new(),
            host_link: String::new(),
            host_addr: String::new(),
            down: false,
        };
        let start = Instant::now();
        let out = run_script(&["up", dir.to_str().unwrap(), &n.to_string()]);
        let took = start.elapsed();
        assert!(out.status.success(), "swarm.sh up: {}", show(&out));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [_, _, _, sock] if f[0].starts_with("node") => s.nodes.push(sock.to_string()),
                ["host", addr, link] => {
                    s.host_addr = addr.to_string();
                    s.host_link = link.to_string();
                }
                _ => panic!("swarm.sh up printed an unexpected line: {line:?}"),
            }
        }
        assert_eq!(s.nodes.len(), n, "one line per node: {}", show(&out));
        assert!(!s.host_link.is_empty(), "a host line: {}", show(&out));
        (s, took)
    }

    /// `docker` against node k (1-based).
    fn docker(&self, k: usize, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.nodes[k - 1])
            .output()
            .unwrap()
    }

    fn ok(&self, k: usize, args: &[&str]) -> String {
        let out = self.docker(k, args);
        assert!(
            out.status.success(),
            "node {k}: docker {}: {}",
            args.join(" "),
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn down(&mut self) -> Duration {
        let start = Instant::now();
        let out = run_script(&["down", self.dir.to_str().unwrap()]);
        let took = start.elapsed();
        assert!(out.status.success(), "swarm.sh down: {}", show(&out));
        self.down = true;
        took
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if !self.down {
            let out = run_script(&["down", self.dir.to_str().unwrap()]);
            if !out.status.success() {
                eprintln!("swarm.sh down (cleanup): {}", show(&out));
            }
        }
    }
}

fn run_script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Hostname → status, from the manager's `docker node ls`.
fn node_states(s: &Swarm) -> Vec<(String, String)> {
    let out = s.docker(1, &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, st)| (h.to_string(), st.to_string()))
        .collect()
}

/// The sockets of node k's shims, as its tasks' bundles name them.
fn shim_sockets(dir: &Path, k: usize) -> Vec<PathBuf> {
    let tasks = dir.join(format!(
        "n{k}/exec/containerd/daemon/io.containerd.runtime.v2.task/moby"
    ));
    let mut found = Vec::new();
    for e in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
        if let Ok(a) = std::fs::read_to_string(e.path().join("address")) {
            found.push(PathBuf::from(a.trim().trim_start_matches("unix://")));
        }
    }
    found
}

/// The processes whose command line names `dir` (engines, containerd, shims).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_str().unwrap().as_bytes();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && cmd.windows(needle.len()).any(|w| w == needle)
        {
            found.push(format!("{name}: {}", String::from_utf8_lossy(&cmd)));
        }
    }
    found
}

/// The processes in any of the network namespaces `inos` (nsfs inode numbers).
fn processes_in_netns(inos: &[u64]) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(link) = std::fs::read_link(e.path().join("ns/net")) {
            let link = link.to_string_lossy().into_owned();
            if inos.iter().any(|i| link == format!("net:[{i}]")) {
                found.push(format!("{}: {link}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn three_node_swarm_runs_a_task_per_node_and_marks_a_killed_worker_down() {
    if !require_docker() || !require_root() {
        return;
    }
    let _one = ONE_SWARM.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::Builder::new()
        .prefix("gt-swarm")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path().join("s");
    let (mut s, up) = Swarm::up(&dir, 3);
    eprintln!("swarm up (3 nodes): {:.2}s", up.as_secs_f64());

    // Every node Ready, each with its own hostname.
    let mut states = node_states(&s);
    states.sort();
    assert_eq!(
        states,
        (1..=3)
            .map(|k| (format!("node{k}"), "Ready".to_string()))
            .collect::<Vec<_>>()
    );

    // The namespaces `up` made (their nsfs inode numbers), the shims' sockets later.
    let ns_dir = dir.join("ns");
    let inos: Vec<u64> = std::fs::read_dir(&ns_dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::metadata(e.path()).unwrap().ino())
        .collect();
    assert_eq!(inos.len(), 4, "the hub and 3 nodes in {}", ns_dir.display());

    // A job of 3 tasks, at most one per node, from the copied image; each prints the
    // hostname of the node it ran on.
    let image = test_image();
    s.ok(
        1,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "probe",
            "--mode",
            "replicated-job",
            "--replicas",
            "3",
            "--max-concurrent",
            "3",
            "--replicas-max-per-node",
            "1",
            "--restart-condition",
            "none",
            "--endpoint-mode",
            "dnsrr",
            "--no-resolve-image",
            "--env",
            "NODE={{.Node.Hostname}}",
            &image,
            "sh",
            "-c",
            "echo \"ran on $NODE\"",
        ],
    );
    let tasks = wait_for("3 probe tasks complete", 60, || {
        let out = s.ok(
            1,
            &[
                "service",
                "ps",
                "probe",
                "--format",
                "{{.Node}} {{.CurrentState}}",
            ],
        );
        let mut rows: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, st)| (n.to_string(), st.to_string()))
            .collect();
        rows.sort();
        (rows.len() == 3 && rows.iter().all(|(_, st)| st.starts_with("Complete"))).then_some(rows)
    });
    let nodes: Vec<&str> = tasks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes, ["node1", "node2", "node3"], "one task per node");
    // Each node's own engine ran exactly one task container, which exited 0 and saw the
    // node's hostname.
    for k in 1..=3 {
        let ids = s.ok(
            k,
            &[
                "ps",
                "-aq",
                "--filter",
                "label=com.docker.swarm.service.name=probe",
            ],
        );
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids.len(), 1, "node {k} ran one task: {ids:?}");
        let code = s.ok(k, &["inspect", "--format", "{{.State.ExitCode}}", ids[0]]);
        assert_eq!(code.trim(), "0", "node {k}'s task exit code");
        let logs = s.ok(k, &["logs", ids[0]]);
        assert_eq!(logs.trim(), format!("ran on node{k}"));
    }

    // Something still running on every node when a worker dies and when the swarm goes.
    s.ok(
        1,
        &[
            "service",
            "create",
            "--detach",
            "--name",
            "sleeper",
            "--mode",
            "global",
            "--restart-condition",
            "none",
            "--endpoint-mode",
            "dnsrr",
            "--no-resolve-image",
            &image,
            "sleep",
            "600",
        ],
    );
    wait_for("a sleeper running on each node", 60, || {
        let out = s.ok(
            1,
            &[
                "service",
                "ps",
                "sleeper",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.CurrentState}}",
            ],
        );
        (out.lines().filter(|l| l.starts_with("Running")).count() == 3).then_some(())
    });

    // The shims' sockets outside DIR (in /run/containerd/s), as each task's bundle
    // names them: one per sleeper, on each node.
    let sockets = wait_for("a shim socket per sleeper", 30, || {
        let sockets: Vec<Vec<PathBuf>> = (1..=3).map(|k| shim_sockets(&dir, k)).collect();
        sockets
            .iter()
            .all(|s| s.len() == 1 && s[0].exists())
            .then_some(sockets)
    });

    // Worker 3 fails: the manager marks it Down (heartbeat 1 s).
    let out = run_script(&["kill-node", dir.to_str().unwrap(), "3"]);
    assert!(out.status.success(), "swarm.sh kill-node: {}", show(&out));
    let killed = Instant::now();
    wait_for("the manager to mark node3 Down", 30, || {
        node_states(&s)
            .iter()
            .any(|(h, st)| h == "node3" && st == "Down")
            .then_some(())
    });
    eprintln!(
        "node3 marked Down {:.2}s after its engine was killed",
        killed.elapsed().as_secs_f64()
    );
    let states = node_states(&s);
    assert!(
        states
            .iter()
            .filter(|(h, _)| h != "node3")
            .all(|(_, st)| st == "Ready"),
        "the others stay Ready: {states:?}"
    );
    // A shim killed with SIGKILL cannot remove its socket: kill-node does.
    assert!(
        !sockets[2][0].exists(),
        "node3's shim socket {} is gone; node3's tasks now: {:?}",
        sockets[2][0].display(),
        shim_sockets(&dir, 3)
    );

    // The node comes back: the script waits until the manager sees it Ready again.
    let out = run_script(&["start-node", dir.to_str().unwrap(), "3"]);
    assert!(out.status.success(), "swarm.sh start-node: {}", show(&out));
    let states = node_states(&s);
    assert!(
        states.iter().all(|(_, st)| st == "Ready"),
        "all Ready again: {states:?}"
    );

    let down = s.down();
    eprintln!("swarm down: {:.2}s", down.as_secs_f64());

    // Nothing left: no process of DIR, nobody in its namespaces (so they are gone), no
    // mount under DIR, not the host's link, no cgroup, no shim socket, not DIR.
    assert_eq!(processes_naming(&dir), Vec::<String>::new());
    assert_eq!(processes_in_netns(&inos), Vec::<String>::new());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let d = dir.to_str().unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(d)).collect();
    assert_eq!(left, Vec::<&str>::new(), "mounts under {d}");
    let link = Command::new("ip")
        .args(["link", "show", &s.host_link])
        .output()
        .unwrap();
    assert!(!link.status.success(), "link {} is gone", s.host_link);
    let tag = s.host_link.trim_start_matches("gts");
    let cgroup = format!("gtswarm-{tag}");
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = e.path();
        assert!(
            !p.join(&cgroup).exists(),
            "{} is gone",
            p.join(&cgroup).display()
        );
        assert!(!p.ends_with(&cgroup), "{} is gone", p.display());
    }
    for p in sockets.iter().flatten() {
        assert!(!p.exists(), "shim socket {} is gone", p.display());
    }
    assert!(!dir.exists(), "{} is gone", dir.display());

    // `down` again, on a DIR that no longer exists, is a no-op that succeeds.
    let out = run_script(&["down", d]);
    assert!(out.status.success(), "second down: {}", show(&out));
    eprintln!(
        "swarm timings: up {:.2}s, down {:.2}s",
        up.as_secs_f64(),
        down.as_secs_f64()
    );
}

/// `gt serve` as a child process, killed on drop.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Agents on a real 3-node swarm in clone mode: nothing of the host is mounted into any
/// task; each agent clones its branch from `gt serve` (reached over the swarm's network
/// at the host's address), pushes its commits back and sends its requests there. A
/// worker's power is cut mid-work and one task is OOM-killed: every bead ends done
/// exactly once, node 3's beads were dispatched again elsewhere, the OOM kill is
/// recorded as such (reported by `gt agent run` itself: the manager does not see it),
/// every branch reaches the remote, no service spec holds the rig's secret, doctor is
/// clean (the endpoint check included).
#[test]
fn nine_beads_across_three_nodes_survive_a_dead_worker_each_done_once() {
    if !require_docker() || !require_root() {
        return;
    }
    let _one = ONE_SWARM.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::Builder::new()
        .prefix("gt-swarm")
        .tempdir_in("/tmp")
        .unwrap();
    let (mut s, _) = Swarm::up(&tmp.path().join("s"), 3);
    let t = TestTown::new().on_engine(&s.nodes[0]);
    let port = {
        let l = std::net::TcpListener::bind((s.host_addr.as_str(), 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let config = format!(
        "[defaults]\nimage = \"{}\"\nretry_backoff = [\"0s\"]\n[runtime]\nkind = \"swarm\"\n\
         workspace = \"clone\"\n[serve]\nlisten = \"{addr}:{port}\"\nurl = \"https://{addr}:{port}\"\n",
        test_image(),
        addr = s.host_addr
    );
    std::fs::write(t.root().join("gt.toml"), config).unwrap();
    let mut child = Command::new(gt_bin())
        .args(["--json", "serve"])
        .env("GT_TOWN", t.root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _serve = Serve(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
    assert!(line.contains("listen"), "gt serve said {line:?}");
    // A secret: it must reach the agents over the channel, never any service's spec.
    let secret = "s3cr3t-swarm-value-0451";
    let set = t
        .cmd()
        .args(["secret", "set", "API_TOKEN"])
        .write_stdin(secret)
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", show(&set));
    let remote = tmp.path().join("remote.git");
    git(
        tmp.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    // Rig api: 8 agents that work, checkpoint (which pushes), and hold until mailed.
    // Rig mem: one agent OOM-killed in its first generation, done in its second.
    for (rig, knobs, n) in [
        ("api", "AGENT_HOLD=mail", "8"),
        ("mem", "AGENT_ALLOC_GEN=1", "1"),
    ] {
        let src = t.source_repo(rig);
        t.ok(&[
            "rig",
            "add",
            rig,
            src.to_str().unwrap(),
            "--image",
            &test_image(),
            "--command",
            &scripted_agent(knobs),
            "--memory",
            "128m",
            "--max-polecats",
            n,
            "--remote",
            remote.to_str().unwrap(),
            "--secret",
            "API_TOKEN",
            "--network",
            "host",
            "--merge",
            "off",
        ]);
    }
    let mut beads: Vec<String> = (0..8)
        .map(|i| {
            t.ok(&["bead", "create", "--rig", "api", &format!("work {i}")])
                .trim()
                .to_string()
        })
        .collect();
    let oom_bead = t
        .ok(&["bead", "create", "--rig", "mem", "eat memory"])
        .trim()
        .to_string();
    let mut sling = vec!["sling"];
    sling.extend(beads.iter().map(String::as_str));
    sling.push(&oom_bead);
    t.ok(&sling);
    beads.push(oom_bead.clone());
    let on_node = |k: usize| -> Vec<String> {
        // A job's task wants `complete`, not `running`: ask what it is doing now.
        let out = s.docker(
            1,
            &[
                "node",
                "ps",
                &format!("node{k}"),
                "--format",
                "{{.Name}}|{{.CurrentState}}",
            ],
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(_, st)| st.starts_with("Running"))
            .map(|(n, _)| n.split('.').next().unwrap_or("").to_string())
            .collect()
    };
    // The 8 holders running (spread over the nodes by the swarm), each with its work
    // checkpointed (so pushed to gt), and the OOM-killed generation recorded.
    let deadline = Instant::now() + Duration::from_secs(deadline_secs(120));
    loop {
        t.run(&["patrol"]);
        let holding = beads[..8]
            .iter()
            .filter(|b| {
                let v = t.json(&["bead", "show", b]);
                let last = v["dispatches"].as_array().and_then(|d| d.last().cloned());
                v["status"] == "in_progress"
                    && last.is_some_and(|d| !d["checkpoints"].as_array().is_none_or(Vec::is_empty))
            })
            .count();
        let running: usize = (1..=3).map(|k| on_node(k).len()).sum();
        let oom_seen = t.json(&["bead", "show", &oom_bead])["dispatches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["oom"] == true);
        if holding == 8 && running >= 8 && oom_seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{holding} of 8 holding, {running} tasks running, oom seen: {oom_seen}\n{}\n{}",
            t.ok(&["polecat", "list", "--all"]),
            t.ok(&["log", "-n", "60"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing of the host is mounted into any task, and no spec holds the secret.
    let services = s.ok(1, &["service", "ls", "-q"]);
    let ids: Vec<&str> = services.split_whitespace().collect();
    assert!(!ids.is_empty());
    let mut inspect = vec!["service", "inspect"];
    inspect.extend(ids.iter().copied());
    let specs = s.ok(1, &inspect);
    assert!(!specs.contains(secret), "a service spec holds the secret");
    assert!(
        !specs.contains("GT_TOKEN="),
        "a service spec holds a dispatch token"
    );
    let specs: serde_json::Value = serde_json::from_str(&specs).unwrap();
    for spec in specs.as_array().unwrap() {
        for m in spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(m["Type"], "tmpfs", "a host path mounted: {m}");
        }
    }
    // Power cut on worker 3: its agents die with it.
    let victims: Vec<String> = on_node(3)
        .into_iter()
        .filter(|n| n.contains("-api-"))
        .collect();
    assert!(
        !victims.is_empty(),
        "the swarm placed nothing of api on node 3"
    );
    let killed = run_script(&["kill-node", s.dir.to_str().unwrap(), "3"]);
    assert!(killed.status.success(), "{}", show(&killed));
    // Patrol sees them dead once the manager gives node 3 up, and dispatches their beads
    // again on the live nodes; every holder is mailed (its release) and finishes.
    let dispatches = |id: &str| -> Vec<serde_json::Value> {
        t.json(&["bead", "show", id])["dispatches"]
            .as_array()
            .unwrap()
            .clone()
    };
    let mut mailed = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(deadline_secs(150));
    loop {
        for a in t.json(&["polecat", "list"]).as_array().unwrap() {
            let id = format!(
                "{}/{}",
                a["rig"].as_str().unwrap(),
                a["name"].as_str().unwrap()
            );
            let generation = a["generation"].as_i64().unwrap_or(0);
            if a["state"] == "running" && mailed.insert((id.clone(), generation)) {
                t.ok(&["mail", "send", &id, "-s", "release", "-m", "finish now"]);
            }
        }
        t.run(&["patrol"]);
        let done = beads
            .iter()
            .filter(|b| t.json(&["bead", "show", b])["status"] == "done")
            .count();
        if done == 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of 9 done\n{}\n{}",
            t.ok(&["polecat", "list", "--all"]),
            t.ok(&["log", "-n", "80"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Each bead done exactly once; those of node 3 took a second dispatch, elsewhere.
    let mut redone = 0;
    for b in &beads[..8] {
        let d = dispatches(b);
        let done = d.iter().filter(|x| x["reason"] == "done").count();
        assert_eq!(done, 1, "{b}: {d:?}");
        if d.len() > 1 {
            redone += 1;
        }
    }
    assert_eq!(
        redone,
        victims.len(),
        "the beads of node 3, and only they, ran twice"
    );
    // The OOM kill is recorded as one, and the bead was done by its next dispatch.
    let d = dispatches(&oom_bead);
    assert_eq!(d[0]["oom"], true, "{d:?}");
    assert!(
        d[0]["reason"].as_str().unwrap().starts_with("OOM-killed"),
        "{d:?}"
    );
    assert_eq!(
        d.iter().filter(|x| x["reason"] == "done").count(),
        1,
        "{d:?}"
    );
    // Every branch on the remote, with the work its agent committed in its clone.
    for b in &beads {
        let branch = t.json(&["bead", "show", b])["branch"]
            .as_str()
            .unwrap()
            .to_string();
        let files = git(
            &remote,
            &["ls-tree", "--name-only", &format!("refs/heads/{branch}")],
        );
        if !files.contains(&format!("work-{b}.txt")) {
            let rig = b.split('-').next().unwrap();
            let mut logs = String::new();
            for e in std::fs::read_dir(t.root().join("transcripts").join(rig).join(b))
                .into_iter()
                .flatten()
                .flatten()
            {
                logs += &format!(
                    "--- {}\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
            panic!(
                "{branch} on the remote lacks the work: {files}\n{}\n{logs}\n{}",
                t.ok(&["--json", "bead", "show", b]),
                t.ok(&["log", "-n", "200"])
            );
        }
    }
    let doctor = t.run(&["doctor"]);
    assert!(doctor.status.success(), "{}", show(&doctor));
    // Every dispatch's token secret went with its service (node 3's ones too).
    let left = s.ok(1, &["secret", "ls", "-q"]);
    assert_eq!(left.trim(), "", "secrets left on the swarm");
    s.down();
}
