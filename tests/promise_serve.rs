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
