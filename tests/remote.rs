//! The clone workspace (`[runtime] workspace = "clone"`) on a real engine: agents whose
//! containers mount nothing of the host clone their branch from `gt serve`, push it back
//! fast-forward only, and are refused anything outside their own current dispatch.

mod support;

use gt::agent::remote::{BoxState, CallError, Client};
use hyper::Method;
use std::io::{Read, Write};
use std::path::Path;
use support::clone::*;
use support::*;

/// A port nobody listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A town whose agents work in clones, reaching `gt serve` on the host's loopback at
/// `port` (its rig runs with `--network host`). Port 0: `Serve::start` sets the port
/// its endpoint got.
fn clone_town(port: u16) -> TestTown {
    let t = TestTown::new();
    configure_clone(&t, port);
    t
}

/// Every agent transcript of the town, for failure messages.
fn transcripts(t: &TestTown) -> String {
    let mut text = String::new();
    let mut dirs = vec![t.root().join("transcripts")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let body = std::fs::read(&p).unwrap_or_default();
                text.push_str(&format!(
                    "--- {}\n{}\n",
                    p.display(),
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }
    text
}

/// One HTTPS request written by hand (`request_line`, then `headers`, no body):
/// returns the status code and the body. The library client always sends credentials
/// and always sends its body; this one sends only what it is given.
fn raw(url: &str, ca_pem: &str, request_line: &str, headers: &[String]) -> (u16, String) {
    let addr = url.strip_prefix("https://").unwrap().trim_end_matches('/');
    let host = addr.rsplit_once(':').unwrap().0.to_string();
    let cfg = gt::agent::remote::client_tls(ca_pem).unwrap();
    let name = rustls::pki_types::ServerName::try_from(host.clone()).unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = format!("{request_line} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A peer that closes without TLS close_notify: what came before it counts.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading the answer to {request_line}: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// `git ARGS` in `dir` with `input` on its stdin; its trimmed stdout.
fn git_stdin(dir: &Path, args: &[&str], input: &str) -> String {
    let mut c = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A new commit in `scratch` on top of `parent`, adding `file`; returns its id and a
/// pack of everything it needs.
fn commit_and_pack(scratch: &Path, parent: &str, file: &str) -> (String, Vec<u8>) {
    let blob = git_stdin(
        scratch,
        &["hash-object", "-w", "--stdin"],
        &format!("not yours: {file}\n"),
    );
    let listing = git(scratch, &["ls-tree", parent]);
    let tree = git_stdin(
        scratch,
        &["mktree"],
        &format!("{listing}100644 blob {blob}\t{file}\n"),
    );
    let commit = git(
        scratch,
        &[
            "commit-tree",
            &tree,
            "-p",
            parent,
            "-m",
            &format!("add {file}"),
        ],
    )
    .trim()
    .to_string();
    let r = git2::Repository::open(scratch).unwrap();
    let pack = gt::agent::remote::pack_range(&r, &commit, None).unwrap();
    (commit, pack)
}

#[test]
fn a_bead_is_done_from_a_clone_and_its_branch_reaches_the_remote() {
    if !require_docker() {
        return;
    }
    let t = clone_town(0);
    let remote = clone_rig(&t, &scripted_agent(""), &["--max-polecats", "2"]);
    let serve = Serve::start(&t);
    let ids = [t.bead("first"), t.bead("second")];
    let slung = t.json(&["sling", &ids[0], &ids[1]]);
    assert_eq!(slung.as_array().unwrap().len(), 2, "{slung}");
    // Before any patrol removes them: nothing of the host in either container.
    let cs = containers(&t);
    assert_eq!(cs.len(), 2, "{cs:?}");
    for c in &cs {
        let hc = &c["HostConfig"];
        let binds = hc["Binds"].as_array().cloned().unwrap_or_default();
        assert!(binds.is_empty(), "bind mounts: {binds:?}");
        let mounts = hc["Mounts"].as_array().cloned().unwrap_or_default();
        assert!(!mounts.is_empty(), "the clone's tmpfs mounts are missing");
        for m in &mounts {
            assert_eq!(m["Type"], "tmpfs", "a mount of the host: {m}");
        }
        for m in c["Mounts"].as_array().cloned().unwrap_or_default() {
            assert!(
                m["Type"] != "bind" && m["Type"] != "volume",
                "a mount of the host: {m}"
            );
        }
        assert_eq!(hc["NetworkMode"], "host");
        let env = c["Config"]["Env"].to_string();
        assert!(env.contains(&format!("GT_ENDPOINT={}", serve.url)), "{env}");
    }
    for s in slung.as_array().unwrap() {
        let agent = s["agent"].as_str().unwrap();
        assert!(
            !t.worktree(agent).exists(),
            "clone mode made a host worktree for {agent}"
        );
    }
    t.patrol_until("both beads done", 120, |t| {
        ids.iter().all(|id| t.bead_status(id) == "done")
    });
    for id in &ids {
        let branch = t.json(&["bead", "show", id])["branch"]
            .as_str()
            .unwrap()
            .to_string();
        let log = git(&remote, &["log", "--format=%s", &branch]);
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("{id}: work by"))),
            "{branch} on the remote lacks {id}'s commit: {log}\ngt serve: {}\n{}\n{}",
            serve.stderr(),
            transcripts(&t),
            t.ok(&["log", "-n", "100"])
        );
        let work = git(&remote, &["show", &format!("{branch}:work-{id}.txt")]);
        assert!(work.starts_with("work by api/"), "{work}");
        // The commit gt took from the clone is the one that reached the remote.
        assert_eq!(rev(&remote, &branch), rev(&repo(&t), &branch), "{branch}");
    }
    assert_eq!(t.all_containers(), 0, "containers stayed");
    let doctor = t.json(&["doctor"]);
    assert_eq!(doctor["ok"], true, "{doctor}");
    let endpoint = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "the agents' endpoint answers")
        .cloned();
    assert_eq!(endpoint.map(|c| c["ok"].clone()), Some(true.into()));
}

#[test]
fn the_endpoint_refuses_the_anonymous_the_wrong_and_the_stale() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let AtWork {
        serve,
        ids,
        a,
        b,
        heads,
        main,
    } = two_agents_at_work(&t, "AGENT_SLEEP=30", ["mine", "theirs"]);
    let ca = std::fs::read_to_string(t.root().join(".gt/serve/ca.pem")).unwrap();
    let client = |agent: &str, generation: i64, token: &str| {
        Client::new(&serve.url, &ca, agent, generation, token).unwrap()
    };
    let get_box = |c: &Client| c.call(Method::GET, "/v1/box", None, vec![]);

    // Health needs no credentials; nothing else answers without them.
    let (code, body) = raw(&serve.url, &ca, "GET /health", &[]);
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["ok"], true, "{body}");
    assert_eq!(raw(&serve.url, &ca, "GET /v1/box", &[]).0, 401);
    assert_eq!(raw(&serve.url, &ca, "GET /v1/repo", &[]).0, 401);

    // The right credentials get the agent's own box: the refusals below are not a
    // broken endpoint.
    let own = get_box(&client(&a.agent, a.generation, &a.token)).unwrap();
    let own: BoxState = serde_json::from_slice(&own.body).unwrap();
    assert_eq!(own.assignment.bead, ids[0]);
    assert_eq!(own.assignment.generation, a.generation);

    // A wrong or empty token, another agent's token, another agent with mine: 401.
    let wrong = "0".repeat(a.token.len());
    for (agent, generation, token) in [
        (a.agent.as_str(), a.generation, wrong.as_str()),
        (a.agent.as_str(), a.generation, ""),
        (a.agent.as_str(), a.generation, b.token.as_str()),
        (b.agent.as_str(), b.generation, a.token.as_str()),
        ("api/nobody", a.generation, a.token.as_str()),
    ] {
        let r = get_box(&client(agent, generation, token));
        assert_eq!(status(&r), 401, "{agent} generation {generation}");
    }
    // The right token with a generation it was not issued for.
    for generation in [a.generation - 1, a.generation + 1] {
        let r = get_box(&client(&a.agent, generation, &a.token));
        let s = status(&r);
        assert!(s == 401 || s == 409, "generation {generation}: {s}");
    }

    // Pushes the endpoint must refuse, made in a scratch copy of the rig repository.
    let scratch = scratch_copy(&t);
    let mine = client(&a.agent, a.generation, &a.token);
    let push =
        |c: &Client, head: &str, pack: Vec<u8>| c.call(Method::POST, "/v1/push", Some(head), pack);
    let unmoved = |why: &str| {
        assert_eq!(
            rev(&repo(&t), &a.branch).unwrap(),
            heads.0,
            "{why}: mine moved"
        );
        assert_eq!(
            rev(&repo(&t), &b.branch).unwrap(),
            heads.1,
            "{why}: theirs moved"
        );
    };
    // Work on top of the other agent's branch, pushed as me: it does not descend from
    // my branch, and theirs is not mine to move.
    let (onto_theirs, pack) = commit_and_pack(&scratch, &heads.1, "onto-theirs.txt");
    let r = push(&mine, &onto_theirs, pack.clone());
    assert_eq!(status(&r), 409, "{:?}", r.err());
    unmoved("a push of work on their branch");
    // The same, naming the other agent with my token.
    let r = push(
        &client(&b.agent, b.generation, &a.token),
        &onto_theirs,
        pack,
    );
    assert_eq!(status(&r), 401);
    unmoved("a push as them with my token");
    // A head that rewrites my branch (a sibling of my pushed commit, not a descendant).
    let (sideways, pack) = commit_and_pack(&scratch, &main, "sideways.txt");
    let r = push(&mine, &sideways, pack);
    match &r {
        Err(CallError::Status(s, m)) => {
            assert_eq!(s.as_u16(), 409, "{m}");
            assert!(m.contains("does not descend"), "{m}");
        }
        _ => panic!("a non-fast-forward push was taken"),
    }
    unmoved("a non-fast-forward push");

    // A request over 1 MiB is refused by its announced size, before a byte of it is
    // read (the body is held back until the endpoint says continue, which it never does).
    let credentials = [
        format!("Authorization: Bearer {}", a.token),
        format!("x-gt-agent: {}", a.agent),
        format!("x-gt-generation: {}", a.generation),
        format!("Content-Length: {}", (1 << 20) + 1),
        "Expect: 100-continue".to_string(),
    ];
    let (code, body) = raw(&serve.url, &ca, "POST /v1/request", &credentials);
    assert_eq!(code, 413, "{body}");

    // The refusals cost the agents nothing: both finish, each with its own commit.
    t.patrol_until("both beads done", 120, |t| {
        ids.iter().all(|id| t.bead_status(id) == "done")
    });
    for (d, head) in [(&a, &heads.0), (&b, &heads.1)] {
        let log = git(&repo(&t), &["log", "--format=%H %s", &d.branch]);
        assert!(log.contains(head.as_str()), "{}: {log}", d.branch);
        assert!(
            !log.contains("onto-theirs") && !log.contains("sideways"),
            "{}: {log}",
            d.branch
        );
    }
    // Now the generation is over: its own token is stale.
    let r = get_box(&mine);
    assert_eq!(status(&r), 409, "{:?}", r.err());
    t.doctor_clean();
}

#[test]
fn an_agent_that_cannot_reach_gt_serve_exits_with_a_reason_patrol_records() {
    if !require_docker() {
        return;
    }
    // No `gt serve` on this port: the agent gives up after `serve.patience`, 2 s.
    let t = clone_town(free_port());
    let toml = t.root().join("gt.toml");
    let text = std::fs::read_to_string(&toml).unwrap() + "patience = \"2s\"\n";
    std::fs::write(&toml, text).unwrap();
    clone_rig(&t, &scripted_agent(""), &[]);
    let id = t.bead("alone");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    let cs = containers(&t);
    assert_eq!(cs[0]["State"]["ExitCode"], 69, "{}", cs[0]["State"]);
    let logs = docker(&["logs", cs[0]["Id"].as_str().unwrap()]);
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert!(logs.contains("unreachable"), "{logs}");
    t.patrol_until("the first dispatch ended", 60, |t| {
        !t.dispatches(&id)[0]["ended_at"].is_null()
    });
    let d = &t.dispatches(&id)[0];
    assert_eq!(d["exit_code"], 69, "{d}");
    let reason = d["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("unreachable"), "{d}");
    // And doctor names the endpoint as what is wrong.
    let out = t.run(&["--json", "doctor"]);
    assert!(!out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let endpoint = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "the agents' endpoint answers")
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint check: {report}"));
    assert_eq!(endpoint["ok"], false, "{report}");
    assert!(
        endpoint["breaches"][0]
            .as_str()
            .is_some_and(|b| b.contains("gt serve does not answer")),
        "{report}"
    );
}

/// `gt checkpoint` (and `gt done`) in a clone name the agent's head, and `gt agent run`
/// pushes it before it sends the request: the work is on the host while the agent still
/// works, not only once its command has ended.
#[test]
fn a_checkpoint_hands_the_agents_commit_to_gt_while_it_still_works() {
    if !require_docker() {
        return;
    }
    let t = clone_town(0);
    clone_rig(&t, &scripted_agent("AGENT_SLEEP=30"), &[]);
    let _serve = Serve::start(&t);
    let id = t.bead("checkpointed");
    t.ok(&["sling", &id]);
    let d = open_dispatch(&t, &id);
    let main = rev(&repo(&t), "main").unwrap();
    // The scripted agent commits, checkpoints, then sleeps 30 s in its container. Its
    // checkpoint request, once gt has it, names its commit, which gt already has.
    let named = wait_for("the agent's checkpoint, ingested", 60, || {
        t.ok(&["status"]);
        let log = t.json(&["log", "-n", "1000"]);
        log.as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "checkpoint" && e["subject"] == id.as_str())
            .map(|e| e["data"]["head"].clone())
    });
    let on_host = rev(&repo(&t), &d.branch).unwrap();
    assert_eq!(t.running_containers().len(), 1, "the agent no longer works");
    assert_ne!(
        on_host,
        main,
        "the agent checkpointed its commit, but gt does not have it (the checkpoint names {named})\n{}",
        transcripts(&t)
    );
    assert_eq!(named, on_host.as_str(), "the checkpoint's head");
    let subject = git(&repo(&t), &["log", "-1", "--format=%s", &on_host]);
    assert!(subject.starts_with(&format!("{id}: work by")), "{subject}");
}

/// An agent that keeps running after `gt done` (as an agent CLI that does not exit):
/// the hand-over must still take the commit the done names, from the clone.
#[test]
fn a_done_from_a_clone_hands_over_the_agents_commit_while_the_agent_lingers() {
    if !require_docker() {
        return;
    }
    let t = clone_town(0);
    let remote = clone_rig(&t, &scripted_agent("AGENT_LINGER=1"), &[]);
    let _serve = Serve::start(&t);
    let id = t.bead("lingering");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 60, |t| t.bead_status(&id) == "done");
    let branch = t.json(&["bead", "show", &id])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let files = git(&remote, &["ls-tree", "--name-only", &branch]);
    assert!(
        files.lines().any(|f| f == format!("work-{id}.txt")),
        "the bead is done without the agent's work: {branch} on the remote has {files:?}\n{}\n{}",
        transcripts(&t),
        t.ok(&["log", "-n", "60"])
    );
    assert!(!files.lines().any(|f| f == "late.txt"), "{files}");
}

/// The agent's own client must learn that a request is too big (a 4xx, for which it
/// drops the request), not take the endpoint for unreachable: then it retries with
/// backoff for GT_ENDPOINT_PATIENCE, each try racing again, and may end the agent with
/// exit 69, "gt serve stayed unreachable". The endpoint answers 413 on the headers and
/// closes while the body is still being written; a 16 MiB body (more than the socket
/// buffers take) loses that race nearly always, so five tries in a row tell it. Needs no
/// engine: the size is refused before the credentials are checked.
#[test]
fn the_agents_client_is_told_413_for_a_request_over_1_mib_not_unreachable() {
    let t = clone_town(0);
    let serve = Serve::start(&t);
    let ca = std::fs::read_to_string(t.root().join(".gt/serve/ca.pem")).unwrap();
    let c = Client::new(&serve.url, &ca, "api/nobody", 1, "no-token").unwrap();
    for attempt in 1..=5 {
        let r = c.call(Method::POST, "/v1/request", None, vec![b' '; 16 << 20]);
        match r {
            Err(CallError::Status(s, _)) => assert_eq!(s.as_u16(), 413),
            Err(e) => panic!("try {attempt}: an oversized request was answered with: {e}"),
            Ok(_) => panic!("try {attempt}: an oversized request was taken"),
        }
    }
}
