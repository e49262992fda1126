//! A town whose gt.toml says `[runtime] kind = "swarm"`, on a single-node swarm (a
//! private engine in its own network namespace): agents run as Swarm services, patrol
//! recovers a killed task, and the town ends clean with no service left.

mod support;

use std::process::Output;
use support::*;

fn lines(o: &Output) -> Vec<String> {
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn agents_run_as_swarm_services_and_a_killed_task_is_dispatched_again() {
    if !require_docker() {
        return;
    }
    // Dropped last: the town's services go with the engine.
    let engine = PrivateEngine::start_swarm();
    let s = TestTown::new().on_engine(&engine.host());
    let town = s.id.clone();
    s.configure_swarm("retry_backoff = [\"0s\"]\nmax_attempts = 3");
    let src = s.source_repo("api");
    let remote = s.dir.path().join("remote.git");
    git(
        s.dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    s.ok(&[
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &test_image(),
        "--command",
        &scripted_agent("AGENT_HOLD=1"),
        "--memory",
        "256m",
        "--remote",
        remote.to_str().unwrap(),
    ]);
    let first = s
        .ok(&["bead", "create", "--rig", "api", "first"])
        .trim()
        .to_string();
    let second = s
        .ok(&["bead", "create", "--rig", "api", "second"])
        .trim()
        .to_string();
    s.ok(&["sling", &first, &second]);

    // While they work: one service per dispatch, with gt's labels on the service and on
    // its task's container, and the hardening Swarm can express.
    let label = format!("label=gt.town={town}");
    let services = wait_for("two services of the town", 60, || {
        let v = lines(&engine.docker(&["service", "ls", "-q", "--filter", &label]));
        (v.len() == 2).then_some(v)
    });
    for id in &services {
        let o = engine.docker(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.Labels}}",
            id,
        ]);
        let labels: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(labels["gt.town"], town.as_str(), "{labels}");
        assert_eq!(labels["gt.rig"], "api", "{labels}");
        assert!(
            labels["gt.agent"].is_string() && labels["gt.generation"] == "1",
            "{labels}"
        );
        // The dispatch token is a Swarm secret (a file for the agent), not env in the spec.
        let o = engine.docker(&["service", "inspect", "--format", "{{json .Spec}}", id]);
        let spec = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            !spec.contains("GT_TOKEN="),
            "the token is env in the spec: {spec}"
        );
        assert!(spec.contains("\"gt_token\""), "no token secret: {spec}");
    }
    assert_eq!(
        lines(&engine.docker(&["secret", "ls", "-q", "--filter", &label])).len(),
        2,
        "one token secret per dispatch"
    );
    let running = wait_for("two running task containers", 60, || {
        let v = lines(&engine.docker(&["ps", "-q", "--filter", &label]));
        (v.len() == 2).then_some(v)
    });
    let o = engine.docker(&["inspect", "--format", "{{json .HostConfig}}", &running[0]]);
    let hc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(hc["CapDrop"], serde_json::json!(["ALL"]), "{hc}");
    assert_eq!(hc["ReadonlyRootfs"], true, "{hc}");
    assert_eq!(hc["Init"], true, "{hc}");
    assert_eq!(hc["Memory"], 256 << 20, "{hc}");
    assert!(hc["PidsLimit"].as_i64().is_some_and(|p| p > 0), "{hc}");
    assert_eq!(hc["LogConfig"]["Config"]["max-size"], "4900k", "{hc}");
    // no-new-privileges reaches a task from API 1.46 (Docker 27) on; older engines
    // drop it (gt's report says so).
    let api = String::from_utf8_lossy(
        &engine
            .docker(&["version", "--format", "{{.Server.APIVersion}}"])
            .stdout,
    )
    .trim()
    .to_string();
    let minor: u32 = api
        .split_once('.')
        .and_then(|(_, m)| m.parse().ok())
        .unwrap_or(0);
    eprintln!(
        "engine API {api}; task security options: {}",
        hc["SecurityOpt"]
    );
    if minor >= 46 {
        assert!(
            hc["SecurityOpt"].to_string().contains("no-new-privileges"),
            "{hc}"
        );
    }
    s.patrol_until("both agents running", 60, |s| {
        s.json(&["polecat", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["state"] == "running")
            .count()
            == 2
    });

    // A pass over running agents asks nothing per agent: connecting, the pass's one
    // list (services and tasks) and the merge queue's sweep of its gates.
    let pass: serde_json::Value = serde_json::from_str(&s.ok(&["--json", "patrol"])).unwrap();
    assert!(
        pass["runtime_calls"].as_u64().is_some_and(|n| n <= 3),
        "{pass}"
    );

    // Its output, through the service's logs.
    let other = s.json(&["bead", "show", &second])["agent"].clone();
    wait_for("the agent's first line through gt peek", 30, || {
        s.ok(&["peek", other.as_str().unwrap()])
            .contains(&second)
            .then_some(())
    });

    // A task killed under the agent (its container removed on the node): patrol records
    // the death from the task's status and dispatches the bead again, as a new service.
    let agent = s.json(&["bead", "show", &first])["agent"]
        .as_str()
        .unwrap()
        .to_string();
    let name = polecat_name(&agent).to_string();
    let victim = lines(&engine.docker(&[
        "ps",
        "-q",
        "--filter",
        &label,
        "--filter",
        &format!("label=gt.agent={name}"),
    ]));
    assert_eq!(victim.len(), 1, "{victim:?}");
    assert!(engine.docker(&["rm", "-f", &victim[0]]).status.success());
    s.patrol_until("the killed agent dispatched again", 60, |s| {
        let d = s.dispatches(&first);
        d.len() == 2 && d[1]["ended_at"].is_null()
    });
    let d = s.dispatches(&first);
    assert!(
        d[0]["reason"].as_str().unwrap().contains("without done"),
        "{d:?}"
    );
    assert_eq!(d[0]["exit_code"], 137, "{d:?}");
    assert_eq!(d[0]["oom"], false, "{d:?}");
    // The old service went with its generation; the new one carries the next.
    let gens = wait_for("the new generation's service", 60, || {
        let v = lines(&engine.docker(&[
            "service",
            "ls",
            "--filter",
            &label,
            "--filter",
            &format!("label=gt.agent={name}"),
            "--format",
            "{{.Name}}",
        ]));
        (v.len() == 1).then_some(v)
    });
    let o = engine.docker(&[
        "service",
        "inspect",
        "--format",
        "{{index .Spec.Labels \"gt.generation\"}}",
        &gens[0],
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2");

    // Let both finish: done once each, branches on the remote, no service left.
    for a in ["api"].iter().flat_map(|rig| {
        std::fs::read_dir(s.root().join("agents").join(rig))
            .unwrap()
            .flatten()
            .map(|e| e.path())
    }) {
        std::fs::write(a.join("box/release"), "").unwrap();
    }
    s.patrol_until("both beads done and their services gone", 120, |s| {
        s.bead_status(&first) == "done"
            && s.bead_status(&second) == "done"
            && lines(&engine.docker(&["service", "ls", "-q", "--filter", &label])).is_empty()
    });
    assert_eq!(s.dispatches(&first).len(), 2);
    assert_eq!(s.dispatches(&second).len(), 1);
    // Their secrets went with their services (the killed one's too).
    assert_eq!(
        lines(&engine.docker(&["secret", "ls", "-q", "--filter", &label])),
        Vec::<String>::new()
    );
    // Its output was kept from the service before the service went.
    let kept = s.ok(&["peek", "--bead", &second]);
    assert!(kept.contains(&second), "{kept}");
    for b in [&first, &second] {
        let branch = s.dispatches(b).last().unwrap()["branch"]
            .as_str()
            .unwrap()
            .to_string();
        git(&remote, &["rev-parse", &format!("refs/heads/{branch}")]);
    }
    let o = s.run(&["--json", "doctor"]);
    assert!(
        o.status.success(),
        "doctor: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_swarm_town_on_an_engine_that_is_no_manager_says_what_to_do() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure_swarm("");
    t.rig("true", &[]);
    let id = t.bead("nowhere");
    let err = t.fails(&["sling", &id], 1);
    assert!(
        err.contains("swarm manager") && err.contains("kind = \"docker\""),
        "{err}"
    );
    // Nothing is left claimed: the bead waits open, its agent idle.
    assert_eq!(t.bead_status(&id), "open");
    let agents = t.json(&["polecat", "list"]);
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] == "idle"),
        "{agents}"
    );
}

#[test]
fn an_offline_rig_is_refused_on_a_swarm_with_what_to_do() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure_swarm("");
    t.rig("true", &["--network", "none"]);
    let id = t.bead("offline");
    let err = t.fails(&["sling", &id], 1);
    assert!(
        err.contains("cannot run without a network") && err.contains("--network default"),
        "{err}"
    );
    assert_eq!(t.bead_status(&id), "open");
}

/// The first polecat's "why", once it says its task waits for a node to take it.
fn waits_unplaced(t: &TestTown) -> String {
    let why = wait_for("the polecat to say why its task waits", 60, || {
        let v = t.json(&["polecat", "list"]);
        let why = v[0]["why"].as_str().unwrap_or("").to_string();
        why.contains("not started yet").then_some(why)
    });
    assert!(why.contains("no suitable node"), "{why}");
    why
}

/// A task no node can take (it reserves more memory than any node has) waits in the
/// swarm for ever: `gt polecat list` says why at once, in the manager's words.
#[test]
fn a_task_no_node_can_take_says_why_at_once() {
    if !require_docker() {
        return;
    }
    let engine = PrivateEngine::start_swarm();
    let t = TestTown::new().on_engine(&engine.host());
    t.configure_swarm("");
    t.rig("sleep 600", &["--memory", "900g"]);
    let id = t.bead("too big");
    t.ok(&["sling", &id]);
    let why = waits_unplaced(&t);
    assert!(why.contains("insufficient resources"), "{why}");
    assert_eq!(t.json(&["polecat", "list"])[0]["state"], "running");
}

/// A rig's placement constraints reach its services: on a node without the label its
/// agent waits, saying why; once the node is labelled, it runs there.
#[test]
fn a_rig_placed_by_a_node_label_runs_only_where_the_label_is() {
    if !require_docker() {
        return;
    }
    let engine = PrivateEngine::start_swarm();
    let t = TestTown::new().on_engine(&engine.host());
    t.configure_swarm("");
    t.rig(
        "sleep 600",
        &["--placement", "node.labels.gt-test-gpu==yes"],
    );
    assert!(
        t.ok(&["rig", "show", "api"])
            .contains("node.labels.gt-test-gpu==yes"),
        "rig show names the placement"
    );
    let err = t.fails(&["rig", "set", "api", "--placement", "gpu=yes"], 2);
    assert!(err.contains("not a placement constraint"), "{err}");
    let id = t.bead("placed");
    t.ok(&["sling", &id]);
    waits_unplaced(&t);
    let node = String::from_utf8_lossy(&engine.docker(&["node", "ls", "-q"]).stdout)
        .trim()
        .to_string();
    let o = engine.docker(&["node", "update", "--label-add", "gt-test-gpu=yes", &node]);
    assert!(o.status.success(), "{o:?}");
    wait_for("the task to run on the labelled node", 60, || {
        let v = t.json(&["polecat", "list"]);
        let why = v[0]["why"].as_str().unwrap_or("").to_string();
        let o = engine.docker(&["ps", "-q", "--filter", &format!("label=gt.town={}", t.id)]);
        (!why.contains("not started yet") && !String::from_utf8_lossy(&o.stdout).trim().is_empty())
            .then_some(())
    });
}

#[test]
fn an_oom_kill_on_a_swarm_is_recorded_as_oom_from_the_agents_own_report() {
    if !require_docker() {
        return;
    }
    let engine = PrivateEngine::start_swarm();
    let s = TestTown::new().on_engine(&engine.host());
    s.configure_swarm("retry_backoff = [\"0s\"]\nmax_attempts = 1");
    // 16m: small enough that `gt agent run` (~15 MB mapped) would be the kernel's pick,
    // were the agent command not marked to be taken first.
    let alloc = "x=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; while :; do x=\"$x$x\"; done";
    s.rig(alloc, &["--memory", "16m"]);
    let id = s.bead("eat memory");
    s.ok(&["sling", &id]);
    // The manager never says OOM; `gt agent run` in the task does, through the mailbox.
    s.patrol_until("the bead to fail", 60, |s| s.bead_status(&id) == "failed");
    let d = s.dispatches(&id);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["oom"], true, "{d:?}");
    assert!(
        d[0]["reason"].as_str().unwrap().starts_with("OOM-killed"),
        "{d:?}"
    );
    let label = format!("label=gt.town={}", s.id);
    s.patrol_until("no service left", 30, |_| {
        lines(&engine.docker(&["service", "ls", "-q", "--filter", &label])).is_empty()
    });
}

#[test]
fn the_merge_queue_gates_and_lands_a_change_on_a_swarm() {
    if !require_docker() {
        return;
    }
    let engine = PrivateEngine::start_swarm();
    let s = TestTown::new().on_engine(&engine.host());
    s.configure_swarm("");
    s.rig(
        &scripted_agent(""),
        &[
            "--memory",
            "256m",
            "--merge",
            "auto",
            // The gate runs as a swarm service too; it sees the candidate's files.
            "--test-command",
            "ls work-*.txt && echo gate-on-swarm",
        ],
    );
    let id = s.bead("gated on the swarm");
    s.ok(&["sling", &id]);
    s.patrol_until("the change merged", 120, |s| {
        s.json(&["mq", "list", "--all", "--state", "merged"])
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let main = git(
        &s.root().join("rigs/api/repo"),
        &["ls-tree", "--name-only", "main"],
    );
    assert!(main.contains(&format!("work-{id}.txt")), "{main}");
    let gate_log = std::fs::read_to_string(
        s.root()
            .join(format!("transcripts/api/{id}/gate-mr1-1.log")),
    )
    .unwrap_or_default();
    assert!(gate_log.contains("gate-on-swarm"), "{gate_log:?}");
    // No gate service is left behind.
    let left = std::process::Command::new("docker")
        .args(["service", "ls", "-q"])
        .env("DOCKER_HOST", engine.host())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "{left:?}"
    );
}
