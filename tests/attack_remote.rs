//! Attacks on `gt serve` and the clone workspace, as a malicious agent (its own valid
//! dispatch token, arbitrary code in a container on the host's network) or an
//! unauthenticated client on the network would make them. Each test states the property
//! that must hold; a failing one is a hole, its message says what leaked or stalled.

mod support;

use gt::agent::remote::Client;
use hyper::Method;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use support::clone::*;
use support::*;

// ---------------------------------------------------------------- the town and gt serve

/// Two agents at work (each has pushed its first commit and sleeps), and `gt serve`.
/// Fields drop in order: the endpoint first, then the town and its containers.
struct Pair {
    serve: Serve,
    ca: String,
    a: Dispatch,
    b: Dispatch,
    /// Each agent's branch head on the host after its first push.
    heads: (String, String),
    main: String,
    t: TestTown,
}

impl Pair {
    fn start() -> Pair {
        let t = TestTown::new();
        let w = two_agents_at_work(&t, "AGENT_SLEEP=120", ["attacker", "victim"]);
        Pair {
            ca: Serve::ca(&t),
            serve: w.serve,
            a: w.a,
            b: w.b,
            heads: w.heads,
            main: w.main,
            t,
        }
    }

    fn client(&self, d: &Dispatch) -> Client {
        Client::new(&self.serve.url, &self.ca, &d.agent, d.generation, &d.token).unwrap()
    }

    /// The victim's own `GET /v1/box`, on a thread, given `secs` to answer: its status,
    /// or None when it did not answer in time.
    fn victim_box_within(&self, secs: u64) -> Option<u16> {
        let c = self.client(&self.b);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(status_or_0(&c.call(Method::GET, "/v1/box", None, vec![])));
        });
        rx.recv_timeout(Duration::from_secs(secs)).ok()
    }
}

// ---------------------------------------------------------------- a raw HTTPS client

fn verifying(ca: &str) -> Arc<rustls::ClientConfig> {
    gt::agent::remote::client_tls(ca).unwrap()
}

/// A client that trusts any certificate at all.
fn not_verifying() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct Anything(rustls::crypto::WebPkiSupportedAlgorithms);
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    impl ServerCertVerifier for Anything {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }
    let provider = rustls::crypto::ring::default_provider();
    let algs = provider.signature_verification_algorithms;
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Anything(algs)))
        .with_no_client_auth();
    Arc::new(cfg)
}

/// One keep-alive HTTPS connection, requests and answers written and read by hand.
struct Conn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    /// Connect and finish the TLS handshake within `timeout`.
    fn open(url: &str, cfg: Arc<rustls::ClientConfig>, timeout: Duration) -> std::io::Result<Conn> {
        let addr = url.strip_prefix("https://").unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(Conn {
            tls,
            buf: Vec::new(),
        })
    }

    fn send(&mut self, line: &str, headers: &[String], body: &[u8]) -> std::io::Result<()> {
        let mut head = format!("{line} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        self.tls.write_all(head.as_bytes())?;
        self.tls.write_all(body)?;
        self.tls.flush()
    }

    /// The next answer: status and body (1xx answers have none).
    fn answer(&mut self) -> std::io::Result<(u16, Vec<u8>)> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let code: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let len: usize = if code < 200 {
            0
        } else {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0)
        };
        while self.buf.len() < end + len {
            self.fill()?;
        }
        let body = self.buf[end..end + len].to_vec();
        self.buf.drain(..end + len);
        Ok((code, body))
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut b = [0u8; 16384];
        match self.tls.read(&mut b) {
            Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// One request on a fresh connection: its status (0 when the connection failed).
fn once(url: &str, cfg: Arc<rustls::ClientConfig>, line: &str, headers: &[String]) -> u16 {
    let Ok(mut c) = Conn::open(url, cfg, Duration::from_secs(10)) else {
        return 0;
    };
    if c.send(line, headers, b"").is_err() {
        return 0;
    }
    c.answer().map(|a| a.0).unwrap_or(0)
}

// ---------------------------------------------------------------- git fixtures

/// A pack of exactly `ids`, nothing they reach.
fn pack_of(r: &git2::Repository, ids: &[git2::Oid]) -> Vec<u8> {
    let mut pb = r.packbuilder().unwrap();
    for id in ids {
        pb.insert_object(*id, None).unwrap();
    }
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf).unwrap();
    buf.to_vec()
}

/// A tree written byte by byte (no name checks): entries (mode, name, id), in git order.
fn raw_tree(r: &git2::Repository, entries: &[(&str, &str, git2::Oid)]) -> git2::Oid {
    let mut data = Vec::new();
    for (mode, name, id) in entries {
        data.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        data.extend_from_slice(id.as_bytes());
    }
    r.odb()
        .unwrap()
        .write(git2::ObjectType::Tree, &data)
        .unwrap()
}

/// The object ids in a pack, by indexing it into a throwaway repository.
fn objects_in_pack(pack: &[u8]) -> Vec<git2::Oid> {
    let d = tempfile::tempdir().unwrap();
    let r = git2::Repository::init_bare(d.path()).unwrap();
    let odb = r.odb().unwrap();
    let mut w = odb.packwriter().unwrap();
    w.write_all(pack).unwrap();
    w.commit().unwrap();
    let mut ids = Vec::new();
    odb.foreach(|id| {
        ids.push(*id);
        true
    })
    .unwrap();
    ids
}

/// A zlib stream of `data` in stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let chunks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let n = c.len() as u16;
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(c);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// A pack entry's type-and-size header.
fn entry_header(kind: u8, mut size: u64) -> Vec<u8> {
    let mut first = (kind << 4) | (size & 0x0f) as u8;
    size >>= 4;
    let mut out = Vec::new();
    while size > 0 {
        out.push(first | 0x80);
        first = (size & 0x7f) as u8;
        size >>= 7;
    }
    out.push(first);
    out
}

fn delta_varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A pack of two objects: a 64 KiB blob of zeros, and a delta on it of `copies`
/// one-byte instructions, each "copy the whole base": a pack of about `copies` bytes
/// whose second object is `copies` × 64 KiB.
fn delta_bomb(copies: usize) -> Vec<u8> {
    let base = vec![0u8; 1 << 16];
    let mut delta = delta_varint(base.len() as u64);
    delta.extend(delta_varint((copies as u64) << 16));
    delta.extend(std::iter::repeat_n(0x80u8, copies));
    let mut pack = b"PACK".to_vec();
    pack.extend_from_slice(&2u32.to_be_bytes());
    pack.extend_from_slice(&2u32.to_be_bytes());
    let base_at = pack.len();
    pack.extend(entry_header(3, base.len() as u64));
    pack.extend(zlib_stored(&base));
    let delta_at = pack.len();
    pack.extend(entry_header(6, delta.len() as u64));
    // The offset back to the base, in git's offset encoding.
    let mut ofs = (delta_at - base_at) as u64;
    let mut enc = vec![(ofs & 0x7f) as u8];
    ofs >>= 7;
    while ofs > 0 {
        ofs -= 1;
        enc.insert(0, 0x80 | (ofs & 0x7f) as u8);
        ofs >>= 7;
    }
    pack.extend(enc);
    pack.extend(zlib_stored(&delta));
    let mut sha = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sha.stdin.take().unwrap().write_all(&pack).unwrap();
    let out = sha.wait_with_output().unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap();
    for i in (0..40).step_by(2) {
        pack.push(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
    }
    pack
}

// ---------------------------------------------------------------- the attacks

/// TLS does not stand in for credentials: a client that verifies nothing (a man in the
/// middle, a scanner) gets the health answer and nothing else, and plain HTTP gets no
/// HTTP answer at all. Needs no engine.
#[test]
fn a_client_that_skips_certificate_checks_gets_nothing_without_credentials() {
    let t = TestTown::new();
    let serve = Serve::start(&t);
    let any = not_verifying();
    assert_eq!(once(&serve.url, any.clone(), "GET /health", &[]), 200);
    for line in [
        "GET /v1/box",
        "GET /v1/repo",
        "POST /v1/request",
        "POST /v1/ending",
        "POST /v1/push",
    ] {
        let code = once(&serve.url, any.clone(), line, &[]);
        assert_eq!(code, 401, "{line} without credentials");
        // Credentials of an agent that does not exist, in every form.
        let forged = [
            "Authorization: Bearer 0000".to_string(),
            "x-gt-agent: api/nux".to_string(),
            "x-gt-generation: 1".to_string(),
        ];
        assert_eq!(once(&serve.url, any.clone(), line, &forged), 401, "{line}");
    }
    assert_eq!(
        once(&serve.url, any.clone(), "GET /v1/../etc/passwd", &[]),
        404
    );
    // Plain HTTP on the TLS port: no answer that reads as HTTP.
    let mut tcp = TcpStream::connect(serve.url.strip_prefix("https://").unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.write_all(b"GET /v1/box HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = tcp.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1.1 200"),
        "plain HTTP answered: {got:?}"
    );
}

/// What an agent sends names only itself: a request or ending for another agent or
/// generation, an id that is a path, a header the size of a body, the box or repo of
/// another agent, are refused; and the repo pack it gets holds its own branch and the
/// default branch, not the other agent's work.
#[test]
fn requests_and_reads_naming_anything_but_the_callers_own_dispatch_are_refused() {
    if !require_docker() {
        return;
    }
    let p = Pair::start();
    let (a, b) = (&p.a, &p.b);
    let cfg = verifying(&p.ca);
    let mut c = Conn::open(&p.serve.url, cfg.clone(), Duration::from_secs(30)).unwrap();
    let mut post = |path: &str, body: serde_json::Value| -> u16 {
        let body = body.to_string().into_bytes();
        let mut h = a.headers();
        h.push(format!("Content-Length: {}", body.len()));
        c.send(&format!("POST {path}"), &h, &body).unwrap();
        c.answer().unwrap().0
    };
    let request = |id: &str, agent: &str, generation: i64| {
        serde_json::json!({
            "id": id, "agent": agent, "generation": generation, "token": a.token,
            "created_at": 0, "kind": "escalate", "subject": "x", "body": "y",
        })
    };
    assert_eq!(
        post("/v1/request", request("for-b", &b.agent, b.generation)),
        403
    );
    assert_eq!(
        post("/v1/request", request("next", &a.agent, a.generation + 1)),
        403
    );
    assert_eq!(
        post("/v1/request", request("old", &a.agent, a.generation - 1)),
        403
    );
    for id in [
        "../../../../escape",
        "..",
        "a/b",
        "x.json\0",
        &"y".repeat(65),
    ] {
        assert_eq!(
            post("/v1/request", request(id, &a.agent, a.generation)),
            400,
            "{id:?}"
        );
    }
    let ending = |generation: i64| serde_json::json!({ "generation": generation, "exit_code": 137, "oom": true });
    assert_eq!(post("/v1/ending", ending(a.generation + 1)), 403);
    assert_eq!(post("/v1/ending", ending(a.generation - 1)), 403);
    // Nothing named escape was written anywhere in the town.
    let mut dirs = vec![p.t.dir.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains("escape"), "{}", e.path().display());
            if e.file_type().map(|f| f.is_dir()).unwrap_or(false) {
                dirs.push(e.path());
            }
        }
    }
    // My token, their name: nothing of theirs.
    let as_b = Client::new(&p.serve.url, &p.ca, &b.agent, b.generation, &a.token).unwrap();
    for path in ["/v1/box", "/v1/repo"] {
        assert_eq!(
            status_or_0(&as_b.call(Method::GET, path, None, vec![])),
            401,
            "{path}"
        );
    }
    // A 1 MiB header and a 300-character agent name: refused, and nothing breaks. (A
    // header block of 200 KiB is read and served: hyper's own bound is about 400 KiB a
    // connection.)
    let mut h = a.headers();
    h.push(format!("x-pad: {}", "p".repeat(1 << 20)));
    let code = once(&p.serve.url, cfg.clone(), "GET /v1/box", &h);
    assert!(
        code == 431 || code == 400 || code == 0,
        "a 1 MiB header: {code}"
    );
    let long = [
        format!("Authorization: Bearer {}", a.token),
        format!("x-gt-agent: {}", "a".repeat(300)),
        "x-gt-generation: 1".into(),
    ];
    assert_eq!(once(&p.serve.url, cfg.clone(), "GET /v1/box", &long), 401);
    // The repo pack: my branch and main, not their commit.
    let pack = p
        .client(a)
        .call(Method::GET, "/v1/repo", None, vec![])
        .unwrap();
    let ids = objects_in_pack(&pack.body);
    let has = |h: &str| ids.contains(&git2::Oid::from_str(h).unwrap());
    assert!(has(&p.heads.0) && has(&p.main), "my own branch is missing");
    assert!(
        !has(&p.heads.1),
        "GET /v1/repo leaked the other agent's commit"
    );
    // Both still work.
    for d in [a, b] {
        assert_eq!(
            status_or_0(&p.client(d).call(Method::GET, "/v1/box", None, vec![])),
            200
        );
    }
}

/// An agent that knows another agent's commit id (from mail, a note, a log line) must
/// not be able to pull that work into its own branch: a push of one merge commit whose
/// second parent is the other agent's head sends none of the other agent's objects, so
/// the endpoint has to notice it is being asked to adopt objects it already holds for
/// someone else. Adopted, the other agent's work is then served back to the attacker by
/// `GET /v1/repo`, and would land with the attacker's `gt done`.
#[test]
fn a_push_cannot_graft_another_agents_commits_onto_the_pushers_branch() {
    if !require_docker() {
        return;
    }
    let p = Pair::start();
    let scratch = scratch_repo(&p.t);
    let (mine, theirs) = (
        git2::Oid::from_str(&p.heads.0).unwrap(),
        git2::Oid::from_str(&p.heads.1).unwrap(),
    );
    let their_tree = scratch.find_commit(theirs).unwrap().tree().unwrap();
    let sig = git2::Signature::now("x", "x@x").unwrap();
    let parents = [
        &scratch.find_commit(mine).unwrap(),
        &scratch.find_commit(theirs).unwrap(),
    ];
    let graft = scratch
        .commit(None, &sig, &sig, "graft", &their_tree, &parents)
        .unwrap();
    // Only the merge commit travels: not one object of the other agent's.
    let pack = pack_of(&scratch, &[graft]);
    assert_eq!(objects_in_pack(&pack), vec![graft]);
    let r = p
        .client(&p.a)
        .call(Method::POST, "/v1/push", Some(&graft.to_string()), pack);
    let took = r.is_ok();
    let on_host = rev(&repo(&p.t), &p.a.branch).unwrap();
    let leaked = p
        .client(&p.a)
        .call(Method::GET, "/v1/repo", None, vec![])
        .map(|a| objects_in_pack(&a.body).contains(&theirs))
        .unwrap_or(false);
    assert_eq!(rev(&repo(&p.t), &p.b.branch).unwrap(), p.heads.1);
    assert!(
        !took && on_host == p.heads.0 && !leaked,
        "a push of one commit naming the other agent's head as a parent was taken \
         (my branch now {on_host}, was {}); GET /v1/repo now serves their commit {theirs}: {leaked}",
        p.heads.0
    );
}

/// A commit whose tree holds `.git/hooks/post-checkout`, a symlink out of the tree and
/// a gitlink: the host may keep the objects (they are data), but never writes them as
/// files, never runs the hook, and the other agent is untouched.
#[test]
fn a_pushed_tree_with_git_hooks_symlinks_and_gitlinks_is_never_followed_or_run() {
    if !require_docker() {
        return;
    }
    let p = Pair::start();
    let scratch = scratch_repo(&p.t);
    let marker = p.t.dir.path().join("pwned");
    let odb = scratch.odb().unwrap();
    let hook = odb
        .write(
            git2::ObjectType::Blob,
            format!("#!/bin/sh\ntouch {}\n", marker.display()).as_bytes(),
        )
        .unwrap();
    let link = odb
        .write(git2::ObjectType::Blob, b"../../../../..")
        .unwrap();
    let hooks = raw_tree(
        &scratch,
        &[
            ("100755", "post-checkout", hook),
            ("100755", "post-merge", hook),
        ],
    );
    let dotgit = raw_tree(&scratch, &[("40000", "hooks", hooks)]);
    let sub = git2::Oid::from_str(&"ab".repeat(20)).unwrap();
    let root = raw_tree(
        &scratch,
        &[
            ("40000", ".git", dotgit),
            ("40000", ".GIT", dotgit),
            ("120000", "escape", link),
            ("160000", "sub", sub),
        ],
    );
    let sig = git2::Signature::now("x", "x@x").unwrap();
    let parent = scratch
        .find_commit(git2::Oid::from_str(&p.heads.0).unwrap())
        .unwrap();
    let tree = scratch.find_tree(root).unwrap();
    let c = scratch
        .commit(None, &sig, &sig, "hostile", &tree, &[&parent])
        .unwrap();
    let pack = pack_of(&scratch, &[c, root, dotgit, hooks, hook, link]);
    let r = p
        .client(&p.a)
        .call(Method::POST, "/v1/push", Some(&c.to_string()), pack);
    eprintln!("the hostile push was answered {}", status_or_0(&r));
    let rig = repo(&p.t);
    let git_dir = if rig.join(".git").is_dir() {
        rig.join(".git")
    } else {
        rig.clone()
    };
    for h in ["post-checkout", "post-merge"] {
        assert!(
            !git_dir.join("hooks").join(h).exists(),
            "hook {h} installed"
        );
    }
    assert!(!rig.join("escape").exists() && !rig.join("sub").exists());
    // The other agent works on, and its branch is where it was.
    assert_eq!(rev(&rig, &p.b.branch).unwrap(), p.heads.1);
    assert_eq!(p.victim_box_within(30), Some(200));
    assert!(!marker.exists(), "the pushed hook ran on the host");
}

/// A pack of about 24 KiB whose second object is a delta "copy the 64 KiB base 24,576
/// times" (1.5 GiB). The import refuses objects over 256 MiB, but only after the pack
/// has been indexed; indexing resolves the delta into memory. The endpoint's memory must
/// stay near the size of what it was sent, and other agents keep working.
#[test]
fn a_tiny_pack_with_a_delta_bomb_does_not_blow_up_the_endpoints_memory() {
    if !require_docker() {
        return;
    }
    let p = Pair::start();
    let before = p.serve.peak_rss();
    let bomb = delta_bomb(24576);
    let sent = bomb.len();
    assert!(sent < 200 << 10, "{sent}");
    let r = p.client(&p.a).call(
        Method::POST,
        "/v1/push",
        Some(&p.heads.0.replace('0', "1")),
        bomb,
    );
    let code = status_or_0(&r);
    let grew = p.serve.peak_rss().saturating_sub(before);
    assert!(
        (400..500).contains(&code),
        "the bomb push was answered {code}: {:?}",
        r.err()
    );
    assert_eq!(
        p.victim_box_within(30),
        Some(200),
        "the other agent after the bomb"
    );
    assert!(
        grew < 512 << 20,
        "a {sent}-byte push grew gt serve's peak memory by {} MiB (answer {code})",
        grew >> 20
    );
}

/// Ten thousand calls from an agent with its own token: it is slowed (429) and the other
/// agent is not. Then the same flood from anyone at all, unauthenticated, naming the
/// other agent: the rate bucket is the named agent's, taken before the token is checked,
/// so the flood must not spend it.
#[test]
fn a_flood_slows_only_the_flooder_not_the_agent_it_names() {
    if !require_docker() {
        return;
    }
    let p = Pair::start();
    let cfg = verifying(&p.ca);
    // The attacker, as itself.
    let mut c = Conn::open(&p.serve.url, cfg.clone(), Duration::from_secs(30)).unwrap();
    let (mut ok, mut slowed) = (0, 0);
    let t0 = Instant::now();
    for _ in 0..10_000 {
        c.send("GET /v1/box", &p.a.headers(), b"").unwrap();
        match c.answer().unwrap().0 {
            200 => ok += 1,
            429 => slowed += 1,
            other => panic!("the flood got {other}"),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        f64::from(ok) <= 200.0 + 50.0 * secs + 10.0,
        "{ok} of 10,000 taken in {secs:.1}s"
    );
    assert!(slowed > 0);
    assert_eq!(
        p.victim_box_within(30),
        Some(200),
        "the victim after the agent's own flood"
    );

    // Anyone, naming the victim with no valid token, as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, answers, sent) = (stop.clone(), answers.clone(), sent.clone());
        let (url, victim) = (p.serve.url.clone(), p.b.clone());
        let cfg = not_verifying();
        std::thread::spawn(move || {
            let forged = Dispatch {
                token: "f".repeat(victim.token.len()),
                ..victim
            };
            let mut c = Conn::open(&url, cfg, Duration::from_secs(30)).unwrap();
            while !stop.load(Ordering::Relaxed) {
                c.send("GET /v1/box", &forged.headers(), b"").unwrap();
                let code = c.answer().unwrap().0;
                *answers.lock().unwrap().entry(code).or_default() += 1;
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_for("the forged flood", 30, || {
        (sent.load(Ordering::Relaxed) >= 400).then_some(())
    });
    let victim = p.victim_box_within(30);
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let answers = answers.lock().unwrap().clone();
    assert_eq!(
        victim,
        Some(200),
        "the victim's own call, while an unauthenticated client floods in its name \
         (the flood was answered {answers:?})"
    );
}

/// Names invented before authentication fill the table of rate buckets: while a client
/// with no credentials keeps 4,096 made-up names fresh, an agent dispatched after it
/// started must still be served.
#[test]
fn invented_names_do_not_lock_new_agents_out_of_the_endpoint() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    configure_clone(&t, 0);
    clone_rig(
        &t,
        &scripted_agent("AGENT_SLEEP=120"),
        &["--max-polecats", "2"],
    );
    let serve = Serve::start(&t);
    let ca = Serve::ca(&t);
    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<_> = (0..4)
        .map(|k| {
            let (stop, url) = (stop.clone(), serve.url.clone());
            std::thread::spawn(move || {
                let mut c = Conn::open(&url, not_verifying(), Duration::from_secs(30)).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    for i in (k..4096).step_by(4) {
                        let h = [
                            "Authorization: Bearer x".to_string(),
                            format!("x-gt-agent: made-up-{i}"),
                            "x-gt-generation: 1".to_string(),
                        ];
                        if c.send("GET /v1/box", &h, b"").is_err() || c.answer().is_err() {
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    // Every made-up name is refused as unknown (401), never slowed for the next one
    // (429): the table of rate buckets holds authenticated agents only.
    let mut n = 0;
    wait_for("the flood to have sent every name once", 60, || {
        n += 1;
        let h = [
            "Authorization: Bearer x".to_string(),
            format!("x-gt-agent: probe-{n}"),
            "x-gt-generation: 1".to_string(),
        ];
        let code = once(&serve.url, not_verifying(), "GET /v1/box", &h);
        assert_eq!(code, 401, "a made-up name, probe {n}");
        (n >= 50).then_some(())
    });
    let id = t.bead("newcomer");
    t.ok(&["sling", &id]);
    let d = open_dispatch(&t, &id);
    let c = Client::new(&serve.url, &ca, &d.agent, d.generation, &d.token).unwrap();
    let code = status_or_0(&c.call(Method::GET, "/v1/box", None, vec![]));
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        f.join().unwrap();
    }
    assert_eq!(
        code, 200,
        "a newly dispatched agent, with its own valid token, while made-up names fill the rate table"
    );
}

/// An agent opens the four pushes the endpoint indexes at once and never sends their
/// bodies: the other agent's push must still go through.
#[test]
fn an_agent_holding_push_slots_with_bodies_it_never_sends_does_not_block_others_pushes() {
    if !require_docker() {
        return;
    }
    let p = Pair::start();
    let cfg = verifying(&p.ca);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..4 {
        let mut c = Conn::open(&p.serve.url, cfg.clone(), Duration::from_secs(30)).unwrap();
        let mut h = p.a.headers();
        h.push(format!("x-gt-head: {}", p.heads.0));
        h.push("Content-Length: 1000000".into());
        h.push("Expect: 100-continue".into());
        c.send("POST /v1/push", &h, b"").unwrap();
        // The first is asked for its body; the others are refused (one push at a time
        // per agent), and none holds a push slot before its body has arrived.
        match c.answer().unwrap().0 {
            100 => held.push(c),
            429 => refused += 1,
            other => panic!("a held push was answered {other}"),
        }
    }
    assert_eq!(
        (held.len(), refused),
        (1, 3),
        "one push at a time per agent"
    );
    // The victim's push of one new commit on its branch.
    let scratch = scratch_repo(&p.t);
    let parent = scratch
        .find_commit(git2::Oid::from_str(&p.heads.1).unwrap())
        .unwrap();
    let sig = git2::Signature::now("x", "x@x").unwrap();
    let next = scratch
        .commit(
            None,
            &sig,
            &sig,
            "more",
            &parent.tree().unwrap(),
            &[&parent],
        )
        .unwrap();
    let pack = pack_of(&scratch, &[next]);
    let c = p.client(&p.b);
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(status_or_0(&c.call(
            Method::POST,
            "/v1/push",
            Some(&next.to_string()),
            pack,
        )));
    });
    let answered = rx.recv_timeout(Duration::from_secs(20)).ok();
    let waited = t0.elapsed();
    drop(held);
    let after = rx.recv_timeout(Duration::from_secs(30)).ok();
    assert_eq!(
        answered,
        Some(200),
        "the victim's push got no answer in {waited:?} while the attacker held 4 push slots \
         (once they were dropped: {after:?})"
    );
}

/// An agent opens as many calls as the endpoint serves at once, each announcing a small
/// request body it never sends (headers are on time, so the header timeout does not
/// apply): the other agent's calls must still be served.
#[test]
fn an_agent_holding_every_connection_with_slow_bodies_does_not_lock_others_out() {
    if !require_docker() {
        return;
    }
    let p = Pair::start();
    let cfg = verifying(&p.ca);
    let mut held = Vec::new();
    let t0 = Instant::now();
    let mut h = p.a.headers();
    h.push("Content-Length: 1000".into());
    h.push("Expect: 100-continue".into());
    // Until it holds all 512 (the agents' own short calls hold the last few now and
    // then: a connection waiting in the backlog takes the slot one of them frees).
    while held.len() < 512 && t0.elapsed() < Duration::from_secs(60) {
        let Ok(mut c) = Conn::open(&p.serve.url, cfg.clone(), Duration::from_secs(5)) else {
            continue;
        };
        if c.send("POST /v1/request", &h, b"").is_err() {
            continue;
        }
        match c.answer() {
            Ok((100, _)) => held.push(c),
            Ok((429, _)) => std::thread::sleep(Duration::from_millis(20)), // rate: wait for a token
            Ok((code, _)) => panic!("a slow request was answered {code}"),
            Err(_) => continue,
        }
    }
    let n = held.len();
    eprintln!("holding {n} connections after {:?}", t0.elapsed());
    let victim = p.victim_box_within(15);
    drop(held);
    let after = p.victim_box_within(30);
    assert_eq!(
        victim,
        Some(200),
        "the victim's box call while the attacker holds {n} connections with bodies it never \
         sends (after they were dropped: {after:?})"
    );
}
