//! The network mailbox and clone workspace, agent side: what `gt agent run` does when
//! nothing of the host is mounted (`[runtime] workspace = "clone"`). It talks to
//! `gt serve` over TLS (the town CA is the only root it trusts), every call carrying the
//! dispatch's agent, generation and token:
//!
//! - `GET /v1/box`: the assignment, inbox and stop marker (mirrored into the local `/gt`,
//!   so the agent's `gt` commands work unchanged), and the rig's secrets;
//! - `GET /v1/repo`: a pack of the agent's branch (and the rig's default branch), which it
//!   clones into its worktree path;
//! - `POST /v1/push`: a pack of its new commits; gt moves the branch, fast-forward only;
//! - `POST /v1/request`: each request file the agent's commands write in `/gt/outbox`
//!   (a done or checkpoint naming a head is pushed first), and `POST /v1/ending`.
//!
//! Unreachable, it retries with backoff for `GT_ENDPOINT_PATIENCE` (default 5 min), then
//! exits [`EXIT_UNREACHABLE`], which patrol records as the reason.

use super::{Assignment, EXIT_STALE, Ending, request::Request};
use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// In clone mode, the container's own tmpfs for the mailbox and the secrets (a path no
/// image has: a tmpfs over an image's directory takes that directory's mode).
pub const RUN_DIR: &str = "/run/gt";
pub const MAILBOX: &str = "/run/gt/box";
pub const SECRETS: &str = "/run/gt/secrets";

/// Exit code of `gt agent run` when `gt serve` stayed unreachable (EX_UNAVAILABLE).
pub const EXIT_UNREACHABLE: i32 = 69;

pub const PATH_HEALTH: &str = "/health";
pub const PATH_BOX: &str = "/v1/box";
pub const PATH_REPO: &str = "/v1/repo";
pub const PATH_PUSH: &str = "/v1/push";
pub const PATH_REQUEST: &str = "/v1/request";
pub const PATH_ENDING: &str = "/v1/ending";
pub const H_AGENT: &str = "x-gt-agent";
pub const H_GENERATION: &str = "x-gt-generation";
pub const H_HEAD: &str = "x-gt-head";
pub const H_REFS: &str = "x-gt-refs";

/// The largest pack a push may send (or a clone receive).
pub const MAX_PACK_BYTES: u64 = 1 << 30;
/// The largest body a call to `path` may carry (0: none), as the endpoint enforces it.
pub fn body_limit(path: &str) -> u64 {
    match path {
        PATH_REQUEST | PATH_ENDING => crate::agent::request::MAX_REQUEST_BYTES,
        PATH_PUSH => MAX_PACK_BYTES,
        _ => 0,
    }
}

/// How often a working agent's box (inbox, stop marker, assignment) is fetched again.
const BOX_REFRESH: Duration = Duration::from_secs(2);

/// One call's deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What `GET /v1/box` returns.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct BoxState {
    pub assignment: Assignment,
    /// Inbox files (mail, nudges): name → content.
    pub inbox: Vec<(String, String)>,
    /// The stop marker (`gt drain`, `gt stop`), when the host wrote one.
    pub stop: Option<String>,
    /// The rig's secrets: name → value.
    pub secrets: Vec<(String, Vec<u8>)>,
}

/// `https://HOST:PORT`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(url: &str) -> std::result::Result<Endpoint, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| "must start with https://".to_string())?
            .trim_end_matches('/');
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (h, p) = v6.split_once("]:").ok_or("needs a port")?;
                (h.to_string(), p)
            }
            None => {
                let (h, p) = rest.rsplit_once(':').ok_or("needs a port")?;
                (h.to_string(), p)
            }
        };
        let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(format!("bad host {host:?}"));
        }
        Ok(Endpoint { host, port })
    }
}

/// A TLS client configuration trusting `ca_pem` alone.
pub fn client_tls(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let c = c.map_err(|e| Error::Other(format!("the town CA certificate: {e}")))?;
        roots
            .add(c)
            .map_err(|e| Error::Other(format!("the town CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Other("no town CA certificate given".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The version `GET /health` at `url` reports to a client that checks no certificate
/// at all, or None when nothing answers: for `gt doctor` to tell "not running" from
/// "running with a certificate the town CA does not sign". Nothing but the health call
/// (no credentials) goes over such a connection.
pub fn answers_unverified(url: &str) -> Option<String> {
    let provider = rustls::crypto::ring::default_provider();
    let algs = provider.signature_verification_algorithms;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(algs)))
        .with_no_client_auth();
    let c = Client::with_tls(url, Arc::new(tls), "-", 0, "-").ok()?;
    let a = c.call(Method::GET, PATH_HEALTH, None, Vec::new()).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
    Some(v["version"].as_str().unwrap_or("?").to_string())
}

/// A certificate verifier that takes any certificate (signatures still checked), for
/// [`answers_unverified`] alone.
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// Could not talk to the endpoint (connect, TLS, timeout): worth retrying.
    Unreachable(String),
    /// The endpoint answered with this status and message.
    Status(StatusCode, String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(why) => write!(f, "unreachable: {why}"),
            CallError::Status(s, m) => write!(f, "{s}: {m}"),
        }
    }
}

impl CallError {
    fn retryable(&self) -> bool {
        match self {
            CallError::Unreachable(_) => true,
            CallError::Status(s, _) => s.is_server_error() || *s == StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An answer: status, the refs header, the body.
pub struct Answer {
    pub refs: Option<String>,
    pub body: Bytes,
}

/// A client of `gt serve` for one dispatch (or, without credentials, for health checks).
pub struct Client {
    endpoint: Endpoint,
    url: String,
    tls: Arc<rustls::ClientConfig>,
    rt: tokio::runtime::Runtime,
    agent: String,
    generation: i64,
    token: String,
}

impl Client {
    pub fn new(
        url: &str,
        ca_pem: &str,
        agent: &str,
        generation: i64,
        token: &str,
    ) -> Result<Client> {
        Client::with_tls(url, client_tls(ca_pem)?, agent, generation, token)
    }

    fn with_tls(
        url: &str,
        tls: Arc<rustls::ClientConfig>,
        agent: &str,
        generation: i64,
        token: &str,
    ) -> Result<Client> {
        let endpoint =
            Endpoint::parse(url).map_err(|why| Error::usage(format!("endpoint {url:?} {why}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the client runtime", e))?;
        Ok(Client {
            endpoint,
            url: url.to_string(),
            tls,
            rt,
            agent: agent.into(),
            generation,
            token: token.into(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One call, no retry.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        head: Option<&str>,
        body: Vec<u8>,
    ) -> std::result::Result<Answer, CallError> {
        // Over the endpoint's limit: it would answer 413 on the headers and close while
        // the body is still being written, which reads as unreachable here.
        let limit = body_limit(path);
        if body.len() as u64 > limit {
            return Err(CallError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} bytes, over the {limit}-byte limit of {path}",
                    body.len()
                ),
            ));
        }
        let fut = self.call_async(method, path, head, body);
        self.rt.block_on(async {
            match tokio::time::timeout(CALL_TIMEOUT, fut).await {
                Ok(r) => r,
                Err(_) => Err(CallError::Unreachable(format!(
                    "no answer within {}s",
                    CALL_TIMEOUT.as_secs()
                ))),
            }
        })
    }

    async fn call_async(
        &self,
        method: Method,
        path: &str,
        head: Option<&str>,
        body: Vec<u8>,
    ) -> std::result::Result<Answer, CallError> {
        let un =
            |what: &str, e: &dyn std::fmt::Display| CallError::Unreachable(format!("{what}: {e}"));
        let addr = (self.endpoint.host.as_str(), self.endpoint.port);
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| un(&format!("connecting to {}", self.url), &e))?;
        let name = rustls::pki_types::ServerName::try_from(self.endpoint.host.clone())
            .map_err(|e| un("server name", &e))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| un("TLS", &e))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| un("HTTP", &e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.endpoint.host.as_str())
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(H_AGENT, self.agent.as_str())
            .header(H_GENERATION, self.generation.to_string());
        if let Some(h) = head {
            req = req.header(H_HEAD, h);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| un("request", &e))?;
        let res = send.send_request(req).await.map_err(|e| un("HTTP", &e))?;
        let status = res.status();
        let refs = res
            .headers()
            .get(H_REFS)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = http_body_util::Limited::new(res.into_body(), MAX_PACK_BYTES as usize)
            .collect()
            .await
            .map_err(|e| un("reading the answer", &e))?
            .to_bytes();
        if !status.is_success() {
            let msg = String::from_utf8_lossy(&body[..body.len().min(1024)])
                .trim()
                .to_string();
            return Err(CallError::Status(status, msg));
        }
        Ok(Answer { refs, body })
    }

    /// A call retried with backoff (0.5 s doubling to 15 s) while the endpoint is
    /// unreachable, overloaded or failing, until `patience` has passed.
    pub fn call_retrying(
        &self,
        method: Method,
        path: &str,
        head: Option<&str>,
        body: &[u8],
        patience: Duration,
    ) -> std::result::Result<Answer, CallError> {
        let deadline = Instant::now() + patience;
        let mut wait = Duration::from_millis(500);
        loop {
            match self.call(method.clone(), path, head, body.to_vec()) {
                Err(e) if e.retryable() && Instant::now() + wait < deadline => {
                    eprintln!(
                        "gt: {} {path}: {e}; retrying in {:.1}s",
                        self.url,
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(15));
                }
                r => return r,
            }
        }
    }
}

/// How long `gt agent run` keeps retrying an unreachable endpoint.
fn patience() -> Duration {
    std::env::var("GT_ENDPOINT_PATIENCE")
        .ok()
        .and_then(|v| crate::util::parse_duration(&v))
        .unwrap_or(Duration::from_secs(300))
}

/// Ended early: the exit code and why.
pub struct Stop(pub i32, pub String);

fn stop_for(e: CallError, what: &str) -> Stop {
    match e {
        CallError::Status(StatusCode::CONFLICT, m) => Stop(EXIT_STALE, format!("{what}: {m}")),
        CallError::Status(s, m) => Stop(EXIT_UNREACHABLE, format!("{what}: refused ({s}): {m}")),
        CallError::Unreachable(m) => Stop(
            EXIT_UNREACHABLE,
            format!("{what}: gt serve stayed unreachable: {m}"),
        ),
    }
}

/// The in-container side of one dispatch in clone mode.
pub struct Relay {
    client: Client,
    mailbox: PathBuf,
    patience: Duration,
    /// The branch head gt has (after the clone, then after each push).
    pub pushed: Option<String>,
    /// A done went out: what the agent leaves after it is not handed over.
    pub done_sent: bool,
    branch: String,
    worktree: String,
}

impl Relay {
    /// From the container's environment: `GT_ENDPOINT`, `GT_ENDPOINT_CA`, `GT_AGENT`,
    /// `GT_GENERATION`, `GT_TOKEN`.
    pub fn from_env(mailbox: &Path) -> std::result::Result<Relay, Stop> {
        let var = |k: &str| {
            std::env::var(k).map_err(|_| Stop(EXIT_UNREACHABLE, format!("{k} is not set")))
        };
        let url = var("GT_ENDPOINT")?;
        let ca = var("GT_ENDPOINT_CA")?;
        let agent = var("GT_AGENT")?;
        let generation: i64 = var("GT_GENERATION")?
            .parse()
            .map_err(|_| Stop(EXIT_STALE, "GT_GENERATION is not a number".into()))?;
        let token = crate::runtime::secret_env("GT_TOKEN")
            .ok_or_else(|| Stop(EXIT_UNREACHABLE, "GT_TOKEN is not set".into()))?;
        let client = Client::new(&url, &ca, &agent, generation, &token)
            .map_err(|e| Stop(EXIT_UNREACHABLE, e.to_string()))?;
        Ok(Relay {
            client,
            mailbox: mailbox.to_path_buf(),
            patience: patience(),
            pushed: None,
            done_sent: false,
            branch: String::new(),
            worktree: String::new(),
        })
    }

    /// Mirror the host's box into the local mailbox (assignment, inbox, stop marker) and
    /// the secrets into `secrets_dir`. Returns the assignment.
    pub fn sync_box(
        &mut self,
        secrets_dir: Option<&Path>,
    ) -> std::result::Result<Assignment, Stop> {
        let a = self
            .client
            .call_retrying(Method::GET, PATH_BOX, None, &[], self.patience)
            .map_err(|e| stop_for(e, "fetching the assignment"))?;
        let b: BoxState = serde_json::from_slice(&a.body)
            .map_err(|e| Stop(EXIT_UNREACHABLE, format!("a bad box from gt serve: {e}")))?;
        let io = |e: Error| Stop(EXIT_UNREACHABLE, format!("writing the local mailbox: {e}"));
        if let Some(dir) = secrets_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| io(Error::io("creating the secrets dir", e)))?;
        }
        for d in ["inbox", "outbox"] {
            std::fs::create_dir_all(self.mailbox.join(d))
                .map_err(|e| io(Error::io("creating the mailbox", e)))?;
        }
        b.assignment.write(&self.mailbox).map_err(io)?;
        for (name, text) in &b.inbox {
            if valid_name(name) {
                let p = self.mailbox.join("inbox").join(name);
                if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
                    crate::util::write_atomic(&p, text.as_bytes()).map_err(io)?;
                }
            }
        }
        let stop_file = self.mailbox.join(crate::town::drain::STOP_FILE);
        match &b.stop {
            Some(s) => crate::util::write_atomic(&stop_file, s.as_bytes()).map_err(io)?,
            None => {
                let _ = std::fs::remove_file(&stop_file);
            }
        }
        if let Some(dir) = secrets_dir {
            for (name, value) in &b.secrets {
                if valid_name(name) {
                    crate::util::write_atomic_mode(&dir.join(name), value, Some(0o400))
                        .map_err(io)?;
                }
            }
        }
        self.branch = b.assignment.branch.clone();
        self.worktree = b.assignment.worktree.clone();
        Ok(b.assignment)
    }

    /// Clone the branch into the assignment's worktree path (an empty directory).
    pub fn clone_workspace(&mut self) -> std::result::Result<(), Stop> {
        let a = self
            .client
            .call_retrying(Method::GET, PATH_REPO, None, &[], self.patience)
            .map_err(|e| stop_for(e, "cloning the rig"))?;
        let refs: Vec<(String, String)> = a
            .refs
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .ok_or_else(|| Stop(EXIT_UNREACHABLE, "gt serve sent no refs".into()))?;
        let head =
            unpack_clone(Path::new(&self.worktree), &self.branch, &refs, &a.body).map_err(|e| {
                Stop(
                    EXIT_UNREACHABLE,
                    format!("cloning into {}: {e}", self.worktree),
                )
            })?;
        self.pushed = Some(head);
        Ok(())
    }

    /// Push the branch up to `head` (default: the worktree's branch head), when gt does not
    /// have it yet. A refused push is reported, not fatal: gt keeps what it had.
    pub fn push(&mut self, head: Option<&str>) -> std::result::Result<(), Stop> {
        let Ok(repo) = git2::Repository::open(&self.worktree) else {
            return Ok(());
        };
        let head = match head {
            Some(h) => h.to_string(),
            None => match crate::git::branch_head(&repo, &self.branch) {
                Ok(Some(h)) => h,
                _ => return Ok(()),
            },
        };
        if self.pushed.as_deref() == Some(head.as_str()) {
            return Ok(());
        }
        let pack = match pack_range(&repo, &head, self.pushed.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("gt: could not pack {head} for gt: {e}");
                return Ok(());
            }
        };
        match self
            .client
            .call_retrying(Method::POST, PATH_PUSH, Some(&head), &pack, self.patience)
        {
            Ok(_) => {
                self.pushed = Some(head);
                Ok(())
            }
            Err(CallError::Status(s, m)) if s != StatusCode::CONFLICT || !m.contains("stale") => {
                eprintln!("gt: gt refused the push of {head}: {s}: {m}");
                Ok(())
            }
            Err(e) => Err(stop_for(e, "pushing the branch")),
        }
    }

    /// Send every request file in the local outbox (pushing a named head first); each
    /// sent one is removed. Returns how many were sent.
    pub fn flush_outbox(&mut self) -> std::result::Result<usize, Stop> {
        let outbox = self.mailbox.join("outbox");
        let Ok(rd) = std::fs::read_dir(&outbox) else {
            return Ok(0);
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        let mut sent = 0;
        for n in names {
            let p = outbox.join(&n);
            let Ok(data) = std::fs::read(&p) else {
                continue;
            };
            let req: Request = match serde_json::from_slice(&data) {
                Ok(r) => r,
                Err(_) => continue, // being written, or not a request: ingest would refuse it too
            };
            // A done or checkpoint hands over the work: push it first (the head it
            // names, or the branch's head when it names none).
            match &req.body {
                super::request::Body::Done { head, .. }
                | super::request::Body::Checkpoint { head, .. } => {
                    self.push(head.as_deref())?;
                }
                _ => {}
            }
            match self
                .client
                .call_retrying(Method::POST, PATH_REQUEST, None, &data, self.patience)
            {
                Ok(_) => {
                    if matches!(req.body, super::request::Body::Done { .. }) {
                        self.done_sent = true;
                    }
                }
                Err(CallError::Status(s, m))
                    if s.is_client_error() && s != StatusCode::CONFLICT =>
                {
                    eprintln!("gt: request {n} refused by gt: {s}: {m}");
                }
                Err(e) => return Err(stop_for(e, "sending a request")),
            }
            let _ = std::fs::remove_file(&p);
            sent += 1;
        }
        Ok(sent)
    }

    /// Report how the command ended.
    pub fn send_ending(&self, ending: &Ending) -> std::result::Result<(), Stop> {
        let data = serde_json::to_vec(ending).map_err(|e| Stop(EXIT_UNREACHABLE, e.to_string()))?;
        self.client
            .call_retrying(Method::POST, PATH_ENDING, None, &data, self.patience)
            .map(|_| ())
            .map_err(|e| stop_for(e, "reporting how the agent ended"))
    }
}

/// Names gt gives files (mail ids, secret names): no path, no dot file.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A pack of the commits from `head` back to (not including) `have`, with their trees
/// and blobs.
pub fn pack_range(repo: &git2::Repository, head: &str, have: Option<&str>) -> Result<Vec<u8>> {
    let mut walk = repo.revwalk()?;
    walk.push(git2::Oid::from_str(head)?)?;
    if let Some(h) = have.and_then(|h| git2::Oid::from_str(h).ok())
        && repo.find_commit(h).is_ok()
    {
        walk.hide(h)?;
    }
    let mut pb = repo.packbuilder()?;
    pb.insert_walk(&mut walk)?;
    let mut buf = git2::Buf::new();
    pb.write_buf(&mut buf)?;
    Ok(buf.to_vec())
}

/// Make a repository at `dir` from `pack`, with `refs` (name, commit), and check out
/// `branch`. Returns the branch's head.
fn unpack_clone(
    dir: &Path,
    branch: &str,
    refs: &[(String, String)],
    pack: &[u8],
) -> Result<String> {
    use std::io::Write;
    let repo = git2::Repository::init(dir)?;
    let odb = repo.odb()?;
    let mut w = odb.packwriter()?;
    w.write_all(pack)
        .map_err(|e| Error::Other(format!("writing the pack: {e}")))?;
    w.commit()?;
    let mut head = None;
    for (name, id) in refs {
        let oid = git2::Oid::from_str(id)?;
        if !name.starts_with("refs/heads/") {
            continue;
        }
        repo.reference(name, oid, true, "gt: cloned from gt serve")?;
        if name == &format!("refs/heads/{branch}") {
            head = Some(id.clone());
        } else if let Some(b) = name.strip_prefix("refs/heads/") {
            // As in a mounted worktree (and any clone): `origin/main` names the target too.
            repo.reference(
                &format!("refs/remotes/origin/{b}"),
                oid,
                true,
                "gt: cloned from gt serve",
            )?;
        }
    }
    let head = head.ok_or_else(|| Error::Other(format!("gt serve sent no ref for {branch}")))?;
    repo.set_head(&format!("refs/heads/{branch}"))?;
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))?;
    Ok(head)
}

/// `gt agent run` in clone mode, before the command: sync the box, clone the branch.
pub fn prepare(mailbox: &Path, secrets: &Path) -> std::result::Result<(Relay, Assignment), Stop> {
    // The worktree is a tmpfs the engine made (owned by root), in our own container.
    crate::town::allow_agent_owned_worktrees();
    let mut relay = Relay::from_env(mailbox)?;
    let a = relay.sync_box(Some(secrets))?;
    relay.clone_workspace()?;
    Ok((relay, a))
}

/// While the command runs: relay requests, refresh the box, every `tick`.
pub fn supervise(
    relay: &mut Relay,
    child: &mut std::process::Child,
    tick: Duration,
) -> std::result::Result<std::process::ExitStatus, Stop> {
    let mut last_box = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Stop(EXIT_UNREACHABLE, format!("waiting for the agent: {e}")))?
        {
            return Ok(status);
        }
        let mut relayed = relay.flush_outbox().map(|_| ());
        if relayed.is_ok() && last_box.elapsed() >= BOX_REFRESH {
            last_box = Instant::now();
            relayed = relay.sync_box(None).map(|_| ());
        }
        if let Err(s) = relayed {
            // A newer generation owns the bead (or gt is gone for good): end the command.
            end_child(child);
            return Err(s);
        }
        std::thread::sleep(tick);
    }
}

/// SIGTERM the command, SIGKILL it after 10 s.
fn end_child(child: &mut std::process::Child) {
    // SAFETY: kill(2) on the pid of our own child, which we have not reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_host_and_port() {
        assert_eq!(
            Endpoint::parse("https://10.1.2.3:7420").unwrap(),
            Endpoint {
                host: "10.1.2.3".into(),
                port: 7420
            }
        );
        assert_eq!(
            Endpoint::parse("https://gt.local:1/").unwrap().host,
            "gt.local"
        );
        assert_eq!(Endpoint::parse("https://[::1]:7420").unwrap().host, "::1");
        for bad in [
            "http://a:1",
            "https://a",
            "https://:1",
            "https://a:x",
            "https://u@a:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_plain_names_are_written() {
        assert!(valid_name("m-123.json"));
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_clone_from_a_pack_checks_out_the_branch_and_a_push_packs_only_new_commits() {
        let d = tempfile::tempdir().unwrap();
        let src = git2::Repository::init(d.path().join("src")).unwrap();
        let sig = git2::Signature::now("t", "t@t").unwrap();
        let commit = |repo: &git2::Repository, file: &str, parent: Option<git2::Oid>| {
            std::fs::write(repo.workdir().unwrap().join(file), file).unwrap();
            let mut idx = repo.index().unwrap();
            idx.add_path(Path::new(file)).unwrap();
            let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
            idx.write().unwrap();
            let parents: Vec<git2::Commit> = parent
                .iter()
                .map(|p| repo.find_commit(*p).unwrap())
                .collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            repo.commit(Some("HEAD"), &sig, &sig, file, &tree, &refs)
                .unwrap()
        };
        let c1 = commit(&src, "a.txt", None);
        let pack = pack_range(&src, &c1.to_string(), None).unwrap();
        let dest = d.path().join("dest");
        let refs = vec![("refs/heads/work".to_string(), c1.to_string())];
        let head = unpack_clone(&dest, "work", &refs, &pack).unwrap();
        assert_eq!(head, c1.to_string());
        assert_eq!(
            std::fs::read_to_string(dest.join("a.txt")).unwrap(),
            "a.txt"
        );
        let clone = git2::Repository::open(&dest).unwrap();
        let c2 = commit(&clone, "b.txt", Some(c1));
        let small = pack_range(&clone, &c2.to_string(), Some(&c1.to_string())).unwrap();
        let whole = pack_range(&clone, &c2.to_string(), None).unwrap();
        assert!(
            small.len() < whole.len(),
            "{} vs {}",
            small.len(),
            whole.len()
        );
    }
}
