//! `gt serve` and the clone workspace keep their promise (issue 21): the endpoint's
//! certificate stays one the town CA signs, also when that CA is made anew; connections
//! nobody authenticated hold nothing the agents need; a clone nobody reads pins no pack
//! in memory; a push becomes one pack, not a file per object.

mod support;

use gt::agent::remote::{CallError, Client};
use hyper::Method;
use std::path::Path;
use std::time::{Duration, Instant};
use support::clone::*;
use support::*;

// ---------------------------------------------------------------- helpers

/// `GET /health` at `url`, trusting `ca` alone.
fn health(url: &str, ca: &str) -> Result<(), CallError> {
    let c = Client::new(url, ca, "-", 0, "-").unwrap();
    c.call(Method::GET, "/health", None, Vec::new()).map(|_| ())
}

/// The town CA's certificate, or None while there is none.
fn ca_now(t: &TestTown) -> Option<String> {
    std::fs::read_to_string(t.root().join(".gt/serve/ca.pem")).ok()
}

fn delete_ca(t: &TestTown) {
    for f in ["ca.pem", "ca.key"] {
        std::fs::remove_file(t.root().join(".gt/serve").join(f)).unwrap();
    }
}

/// `gt doctor`'s check of the endpoint: whether it passed, and what it said.
fn doctor_endpoint(t: &TestTown) -> (bool, String) {
    let out = t.run(&["--json", "doctor"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gt doctor --json: {e}: {out:?}"));
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "the agents' endpoint answers")
        .cloned()
        .unwrap_or_else(|| panic!("no endpoint check in {v}"));
    (c["ok"] == true, c["breaches"].to_string())
}

/// A CA of someone else's (certificate and key) in `dir`, made with openssl.
fn other_ca(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    std::fs::create_dir_all(dir).unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=another CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {out:?}");
    (
        std::fs::read(dir.join("ca.pem")).unwrap(),
        std::fs::read(dir.join("ca.key")).unwrap(),
    )
}

// ---------------------------------------------------------------- 9: the CA and its cert

/// The town CA's files are deleted; `gt serve` starts again, makes a new CA, and must
/// serve a certificate that new CA signs (it kept the old one: every agent, given the
/// new CA, failed TLS).
#[test]
fn gt_serve_started_after_its_ca_was_deleted_serves_a_certificate_the_new_ca_signs() {
    let t = TestTown::new();
    let serve = Serve::start(&t);
    let old = Serve::ca(&t);
    health(&serve.url, &old).expect("the first gt serve answers with its CA");
    drop(serve);
    delete_ca(&t);
    let serve = Serve::start(&t);
    let new = Serve::ca(&t);
    assert_ne!(old, new, "no new CA was made");
    let r = health(&serve.url, &new);
    assert!(
        r.is_ok(),
        "gt serve's certificate does not verify against the town CA it made: {:?}\n{}",
        r.err(),
        serve.stderr()
    );
    assert!(
        serve.stderr().contains("no town CA"),
        "gt serve did not say it made a new CA: {}",
        serve.stderr()
    );
    let (ok, said) = doctor_endpoint(&t);
    assert!(ok, "gt doctor: {said}");
}

/// The town CA's files are deleted while `gt serve` runs: it makes a new CA and serves
/// a certificate it signs within seconds (so `gt sling`, which hands each agent the CA
/// there is, never hands out one the endpoint does not answer with).
#[test]
fn a_ca_deleted_while_gt_serve_runs_is_made_anew_and_served_within_seconds() {
    let t = TestTown::new();
    let serve = Serve::start(&t);
    let old = Serve::ca(&t);
    delete_ca(&t);
    let deadline = Instant::now() + Duration::from_secs(deadline_secs(10));
    let new = loop {
        let r = ca_now(&t).map(|ca| (health(&serve.url, &ca), ca));
        match r {
            Some((Ok(()), ca)) => break ca,
            r if Instant::now() > deadline => panic!(
                "gt serve does not answer with a new town CA: {:?}\n{}",
                r.map(|r| r.0),
                serve.stderr()
            ),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_ne!(old, new);
    let (ok, said) = doctor_endpoint(&t);
    assert!(ok, "gt doctor: {said}\n{}", serve.stderr());
}

/// The town CA is replaced by another one while `gt serve` runs (a CA rotated by hand,
/// or made anew by `gt sling` after a deletion): the endpoint re-issues its certificate
/// from the new CA.
#[test]
fn a_ca_replaced_while_gt_serve_runs_gets_a_certificate_it_signs() {
    let t = TestTown::new();
    let serve = Serve::start(&t);
    let (pem, key) = other_ca(&t.dir.path().join("other-ca"));
    let d = t.root().join(".gt/serve");
    std::fs::write(d.join("ca.key"), key).unwrap();
    std::fs::write(d.join("ca.pem"), &pem).unwrap();
    let pem = String::from_utf8(pem).unwrap();
    wait_for(
        "gt serve answering with a certificate of the new CA",
        10,
        || health(&serve.url, &pem).ok(),
    );
    assert!(
        serve.stderr().contains("issued a new endpoint certificate"),
        "gt serve did not say it re-issued: {}",
        serve.stderr()
    );
}

/// A town CA whose key is not its certificate's (a half-replaced CA): gt serve cannot
/// make a certificate it signs and keeps the one it has; `gt doctor` must say gt serve
/// runs with a certificate the town CA does not sign, not that it does not answer.
#[test]
fn doctor_says_gt_serve_runs_with_a_certificate_the_town_ca_does_not_sign() {
    let t = TestTown::new();
    let serve = Serve::start(&t);
    let (pem, _) = other_ca(&t.dir.path().join("other-ca"));
    std::fs::write(t.root().join(".gt/serve/ca.pem"), &pem).unwrap();
    let (ok, said) = doctor_endpoint(&t);
    assert!(
        !ok,
        "gt doctor passed a certificate the town CA does not sign"
    );
    assert!(
        said.contains("runs") && said.contains("does not verify against the town CA"),
        "gt doctor: {said}"
    );
    // It said why it could not re-issue.
    wait_for("gt serve saying it could not re-issue", 10, || {
        serve
            .stderr()
            .contains("no new certificate could be made")
            .then_some(())
    });
}

/// The CA is made anew by `gt sling` (after a deletion) while gt serve runs: the agent
/// slung with it reaches the endpoint and its bead is done.
#[test]
fn an_agent_slung_with_a_ca_made_anew_reaches_gt_serve_and_is_done() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    configure_clone(&t, 0);
    clone_rig(&t, &scripted_agent(""), &[]);
    let serve = Serve::start(&t);
    let old = Serve::ca(&t);
    delete_ca(&t);
    let id = t.bead("after the CA was deleted");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 120, |t| t.bead_status(&id) == "done");
    assert_ne!(Serve::ca(&t), old);
    let (ok, said) = doctor_endpoint(&t);
    assert!(ok, "gt doctor: {said}\n{}", serve.stderr());
}

// ---------------------------------------------------------------- 17: connections

/// Idle connections from one address (the address every agent of a node shares), more
/// than any per-address cap, nothing sent on them, no token needed: the next caller from
/// that address is still answered, at once (before they time out on their own).
#[test]
fn idle_connections_from_the_agents_address_do_not_lock_it_out() {
    let t = TestTown::new();
    let serve = Serve::start(&t);
    let ca = Serve::ca(&t);
    let addr = serve.url.strip_prefix("https://").unwrap().to_string();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(std::net::TcpStream::connect(&addr).unwrap());
    }
    // Well within the 10 s an idle connection may take to say anything.
    let t0 = Instant::now();
    let r = loop {
        let r = health(&serve.url, &ca);
        if r.is_ok() || t0.elapsed() > Duration::from_secs(4) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        r.is_ok(),
        "no answer in {:?} while {} idle connections are open from the same address: {:?}",
        t0.elapsed(),
        idle.len(),
        r.err()
    );
    // The flood was not simply served: the oldest idle connections were closed.
    let mut closed = 0;
    for c in &mut idle {
        use std::io::Read;
        c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        if matches!(c.read(&mut [0u8; 1]), Ok(0)) {
            closed += 1;
        }
    }
    assert!(closed > 0, "none of the idle connections was dropped");
}

// ---------------------------------------------------------------- 17: clone answers

/// `size` bytes nobody can compress or delta (xorshift), from `seed`.
fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(size + 8);
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    v
}

/// Commit `files` (name, content) onto `main` of the rig's repository.
fn commit_on_main(t: &TestTown, files: &[(String, Vec<u8>)]) {
    let r = git2::Repository::open(repo(t)).unwrap();
    let main = r.find_branch("main", git2::BranchType::Local).unwrap();
    let parent = main.get().peel_to_commit().unwrap();
    let mut tb = r.treebuilder(Some(&parent.tree().unwrap())).unwrap();
    for (name, data) in files {
        let b = r.blob(data).unwrap();
        tb.insert(name, b, 0o100644).unwrap();
    }
    let tree = r.find_tree(tb.write().unwrap()).unwrap();
    let sig = git2::Signature::now("test", "test@example.com").unwrap();
    r.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "big files",
        &tree,
        &[&parent],
    )
    .unwrap();
}

/// An HTTPS connection to `url` on which `GET path` with `headers` was sent and nothing
/// of the answer is ever read.
fn unread_call(
    url: &str,
    ca: &str,
    path: &str,
    headers: &[String],
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use std::io::Write;
    let cfg = gt::agent::remote::client_tls(ca).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let tcp = std::net::TcpStream::connect(url.strip_prefix("https://").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    tls.flush().unwrap();
    tls
}

/// CPU time (user and system) the process `pid` has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from the state (field 3).
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// A rig whose default branch holds 40 MiB nobody can compress (eight 5 MiB files): an
/// agent's clone answer (`GET /v1/repo`) is that big. Eight such answers nobody reads
/// must not each pin a pack in gt serve's memory, and asking for the same heads again
/// must not cost the pack's building (compression, delta search) again.
#[test]
fn clone_answers_nobody_reads_pin_no_packs_and_the_same_heads_are_packed_once() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    configure_clone(&t, 0);
    clone_rig(&t, &scripted_agent("AGENT_SLEEP=120"), &[]);
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("big-{i}.bin"), noise(5 << 20, 1000 + 2 * i)))
        .collect();
    commit_on_main(&t, &files);
    let serve = Serve::start(&t);
    let ca = Serve::ca(&t);
    let id = t.bead("clone a big branch");
    t.ok(&["sling", &id]);
    let d = open_dispatch(&t, &id);
    let main = rev(&repo(&t), "main").unwrap();
    wait_for("the agent's first push", 120, || {
        rev(&repo(&t), &d.branch).filter(|h| *h != main)
    });
    let c = Client::new(&serve.url, &ca, &d.agent, d.generation, &d.token).unwrap();
    let pid = serve.pid();
    // The same heads, four times: the first may build the pack, the others must not.
    let cpu0 = cpu_secs(pid);
    let first = c.call(Method::GET, "/v1/repo", None, vec![]).unwrap();
    let cpu1 = cpu_secs(pid);
    for _ in 0..3 {
        let again = c.call(Method::GET, "/v1/repo", None, vec![]).unwrap();
        assert_eq!(again.body.len(), first.body.len());
    }
    let cpu2 = cpu_secs(pid);
    eprintln!(
        "first clone answer: {:.2}s of CPU, the next three: {:.2}s ({} bytes each)",
        cpu1 - cpu0,
        cpu2 - cpu1,
        first.body.len()
    );
    assert!(first.body.len() > 40 << 20, "{}", first.body.len());
    assert!(
        cpu2 - cpu1 < (cpu1 - cpu0).max(0.5),
        "three more clones of the same heads cost {:.2}s of CPU, the first {:.2}s",
        cpu2 - cpu1,
        cpu1 - cpu0
    );
    // Eight answers nobody reads.
    let before = serve.peak_rss();
    let held: Vec<_> = (0..8)
        .map(|_| unread_call(&serve.url, &ca, "/v1/repo", &d.headers()))
        .collect();
    // Five seconds for gt serve to do whatever it does with them (build, buffer).
    let t0 = Instant::now();
    let mut grew = 0;
    while t0.elapsed() < Duration::from_secs(5) && grew < 120 << 20 {
        std::thread::sleep(Duration::from_millis(100));
        grew = serve.peak_rss().saturating_sub(before);
    }
    eprintln!("8 unread clone answers: gt serve grew {} MiB", grew >> 20);
    assert!(
        grew < 120 << 20,
        "8 unread clone answers of 40 MiB grew gt serve by {} MiB",
        grew >> 20
    );
    drop(held);
    let r = c.call(Method::GET, "/v1/box", None, vec![]);
    assert!(r.is_ok(), "{:?}", r.err());
}

// ---------------------------------------------------------------- 17: pushes

/// Loose object files in a repository's object directory.
fn loose_objects(git_dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(git_dir.join("objects"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 2 && name.chars().all(|c| c.is_ascii_hexdigit()) {
            n += std::fs::read_dir(e.path()).unwrap().count();
        }
    }
    n
}

/// An agent pushes a commit of 30,000 tiny files: gt serve must keep them as one pack
/// (not 30,000 files on the host), and must not hold the rig's git lock (which every
/// worktree operation and done saga of the rig waits for) while it takes them in.
#[test]
fn a_push_of_many_tiny_objects_is_kept_as_a_pack_without_holding_the_rigs_lock() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    configure_clone(&t, 0);
    clone_rig(&t, &scripted_agent("AGENT_SLEEP=120"), &[]);
    let serve = Serve::start(&t);
    let ca = Serve::ca(&t);
    let id = t.bead("many tiny files");
    t.ok(&["sling", &id]);
    let d = open_dispatch(&t, &id);
    let main = rev(&repo(&t), "main").unwrap();
    let base = wait_for("the agent's first push", 120, || {
        rev(&repo(&t), &d.branch).filter(|h| *h != main)
    });
    // The commit, made in a copy of the rig's repository.
    let scratch = scratch_repo(&t);
    let parent = scratch
        .find_commit(git2::Oid::from_str(&base).unwrap())
        .unwrap();
    let mut tb = scratch.treebuilder(Some(&parent.tree().unwrap())).unwrap();
    for i in 0..30_000 {
        let b = scratch.blob(format!("tiny {i}\n").as_bytes()).unwrap();
        tb.insert(format!("t{i:05}"), b, 0o100644).unwrap();
    }
    let tree = scratch.find_tree(tb.write().unwrap()).unwrap();
    let sig = git2::Signature::now("agent", "agent@example.com").unwrap();
    let head = scratch
        .commit(None, &sig, &sig, "many tiny files", &tree, &[&parent])
        .unwrap()
        .to_string();
    let pack = gt::agent::remote::pack_range(&scratch, &head, Some(&base)).unwrap();
    let loose_before = loose_objects(&repo(&t).join(".git"));
    // The push on a thread; here, how long the rig's lock stays taken while it runs.
    let c = Client::new(&serve.url, &ca, &d.agent, d.generation, &d.token).unwrap();
    let h = head.clone();
    let push = std::thread::spawn(move || c.call(Method::POST, "/v1/push", Some(&h), pack));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(t.root().join("rigs/api/worktrees.lock"))
        .unwrap();
    let (mut longest, mut since) = (Duration::ZERO, None::<Instant>);
    while !push.is_finished() {
        match lock.try_lock() {
            Ok(()) => {
                lock.unlock().unwrap();
                since = None;
            }
            Err(_) => {
                let s = *since.get_or_insert_with(Instant::now);
                longest = longest.max(s.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = push.join().unwrap();
    assert!(r.is_ok(), "the push: {:?}\n{}", r.err(), serve.stderr());
    assert_eq!(rev(&repo(&t), &d.branch).as_deref(), Some(head.as_str()));
    let loose = loose_objects(&repo(&t).join(".git")) - loose_before;
    eprintln!("the push left {loose} loose objects; the rig's lock was held {longest:?} at most");
    assert!(
        loose < 100,
        "a push of 30,000 objects left {loose} files in the rig's object directory"
    );
    assert!(
        longest < Duration::from_millis(1500),
        "the rig's git lock was held {longest:?} while the push was taken in"
    );
    // What was pushed reads back.
    let r = git2::Repository::open(repo(&t)).unwrap();
    let got = r.find_commit(git2::Oid::from_str(&head).unwrap()).unwrap();
    assert!(got.tree().unwrap().get_name("t29999").is_some());
}

/// A pushed pack that carries objects its commits do not use (junk an agent adds to
/// fill the host's disk): the push is taken, the junk is not.
#[test]
fn objects_a_push_carries_but_does_not_use_stay_out_of_the_rig() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    configure_clone(&t, 0);
    clone_rig(&t, &scripted_agent("AGENT_SLEEP=120"), &[]);
    let serve = Serve::start(&t);
    let ca = Serve::ca(&t);
    let id = t.bead("junk in a pack");
    t.ok(&["sling", &id]);
    let d = open_dispatch(&t, &id);
    let main = rev(&repo(&t), "main").unwrap();
    let base = wait_for("the agent's first push", 120, || {
        rev(&repo(&t), &d.branch).filter(|h| *h != main)
    });
    let scratch = scratch_repo(&t);
    let parent = scratch
        .find_commit(git2::Oid::from_str(&base).unwrap())
        .unwrap();
    let mut tb = scratch.treebuilder(Some(&parent.tree().unwrap())).unwrap();
    tb.insert("used.txt", scratch.blob(b"used\n").unwrap(), 0o100644)
        .unwrap();
    let tree = scratch.find_tree(tb.write().unwrap()).unwrap();
    let sig = git2::Signature::now("agent", "agent@example.com").unwrap();
    let head = scratch
        .commit(None, &sig, &sig, "used and junk", &tree, &[&parent])
        .unwrap();
    let junk = scratch.blob(&noise(1 << 20, 4242)).unwrap();
    let mut walk = scratch.revwalk().unwrap();
    walk.push(head).unwrap();
    walk.hide(git2::Oid::from_str(&base).unwrap()).unwrap();
    let mut pb = scratch.packbuilder().unwrap();
    pb.insert_walk(&mut walk).unwrap();
    pb.insert_object(junk, None).unwrap();
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf).unwrap();
    let c = Client::new(&serve.url, &ca, &d.agent, d.generation, &d.token).unwrap();
    let r = c.call(
        Method::POST,
        "/v1/push",
        Some(&head.to_string()),
        buf.to_vec(),
    );
    assert!(r.is_ok(), "{:?}\n{}", r.err(), serve.stderr());
    let host = git2::Repository::open(repo(&t)).unwrap();
    assert_eq!(rev(&repo(&t), &d.branch), Some(head.to_string()));
    assert!(host.find_blob(head_blob(&host, head, "used.txt")).is_ok());
    assert!(
        !host.odb().unwrap().exists(junk),
        "the junk blob of the pushed pack is in the rig's repository"
    );
}

/// The blob at `name` in commit `c`'s tree.
fn head_blob(r: &git2::Repository, c: git2::Oid, name: &str) -> git2::Oid {
    r.find_commit(c)
        .unwrap()
        .tree()
        .unwrap()
        .get_name(name)
        .unwrap()
        .id()
}
