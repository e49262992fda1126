//! `gt serve`: the agents' endpoint when nothing of the host is mounted into their
//! containers (`[runtime] workspace = "clone"`, agents on other machines).
//!
//! HTTPS only, with the town CA's certificate for the host of `serve.url` (see
//! `town::pki`), checked against the CA on start and every second while serving:
//! re-issued when the CA was made anew or replaced. Every call but `GET /health` names
//! an agent, its generation and its dispatch token, checked against the database: an
//! unknown agent or a wrong token is 401, another generation 409 (`stale`). What an agent
//! sends is data, handled as the mounted mailbox is: a request goes into the agent's
//! host-side outbox (the spool patrol ingests, with the same idempotency and generation
//! checks), a pushed pack is spooled to disk, indexed in a host-only scratch repository,
//! verified, and kept as one pack in the rig's object store before the same
//! fast-forward-only branch move the worktrees use. Bodies are bounded (requests 1 MiB,
//! packs 1 GiB), each agent has a request rate (`serve.rate`, bursts of 4x) and its own
//! share of connections; connections nobody authenticated hold no agent's share (a
//! flood of them closes its own oldest) and are closed 10 s after they arrive. Clone
//! packs are built once per set of heads and streamed from disk; an answer nobody reads
//! for 30 s is dropped with its connection.

use super::Town;
use crate::agent::remote::{
    BoxState, H_AGENT, H_GENERATION, H_HEAD, H_REFS, PATH_BOX, PATH_ENDING, PATH_HEALTH, PATH_PUSH,
    PATH_REPO, PATH_REQUEST,
};
use crate::error::{Error, Result};
use crate::state::{agents, dispatches};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 512;
/// Pushes indexed at once (each holds a pack on disk and the rig's git lock a moment).
const MAX_PUSHES: usize = 4;
/// A whole call (headers, body, answer) must be done within this.
const CALL_DEADLINE: Duration = Duration::from_secs(600);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections nobody has authenticated on yet (TLS handshake, a first request's
/// headers, health checks), all peers together. They hold nothing an agent needs: when
/// there are this many, a new one closes the oldest of the address that holds the most
/// (a flood from one address closes its own), and each must authenticate within
/// [`HEADER_TIMEOUT`] of its arrival or is closed. An agent's call authenticates within
/// milliseconds of connecting.
const MAX_UNAUTHENTICATED: usize = 128;
/// Connections one authenticated agent may hold at once (each call of the agent's
/// client is a connection of its own).
const MAX_CONNECTIONS_PER_AGENT: usize = 16;
/// Calls one agent may have in flight at once (a push counts; one push at a time).
const MAX_PER_AGENT: usize = 8;
/// A body that sends nothing for this long is dropped (and its call's slot freed).
const BODY_IDLE: Duration = Duration::from_secs(10);
/// Objects in one pushed pack, and one object's size once its deltas are applied: the
/// indexer refuses more before building it (a small delta can declare gigabytes).
const MAX_PACK_OBJECTS: usize = 5_000_000;
/// Inbox files served per box call.
const MAX_INBOX: usize = 1000;

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// An answer that sends nothing for this long (its reader stopped reading) is dropped,
/// with its connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Chunks of a streamed pack, and how many wait between the file and the connection:
/// what an answer nobody reads holds in memory.
const STREAM_CHUNK: usize = 256 << 10;
const STREAM_QUEUE: usize = 4;
/// Clone packs kept per rig (built once per set of branch heads, streamed from disk).
const PACKS_KEPT: usize = 4;
/// Clone packs built at once (each costs CPU and holds an object at a time in memory).
const MAX_PACK_BUILDS: usize = 2;

/// A refusal: its status and what the agent is told.
struct Refusal(StatusCode, String);

fn refuse(s: StatusCode, m: impl Into<String>) -> Refusal {
    Refusal(s, m.into())
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        tracing::warn!("gt serve: {e}");
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "gt could not do it; see its log",
        )
    }
}

/// The agent a call was authenticated as.
struct Caller {
    agent: agents::Agent,
    dispatch: dispatches::Dispatch,
}

struct Shared {
    root: PathBuf,
    /// Open towns (database connections), reused across calls.
    towns: Mutex<Vec<Town>>,
    rate: f64,
    /// Per authenticated agent: its request-rate bucket.
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    /// Per authenticated agent: its calls in flight, and whether one is a push.
    in_flight: Mutex<HashMap<String, (usize, bool)>>,
    /// Connections not authenticated yet.
    lobby: Mutex<Lobby>,
    /// Per authenticated agent: its connections.
    agent_conns: Mutex<HashMap<String, usize>>,
    pushes: tokio::sync::Semaphore,
    builds: tokio::sync::Semaphore,
}

/// A call counted in its agent's in-flight calls while it lives.
struct InFlight {
    shared: Arc<Shared>,
    agent: String,
    push: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut m) = self.shared.in_flight.lock()
            && let Some((n, pushing)) = m.get_mut(&self.agent)
        {
            *n = n.saturating_sub(1);
            if self.push {
                *pushing = false;
            }
            if *n == 0 {
                m.remove(&self.agent);
            }
        }
    }
}

/// The connections nobody has authenticated on yet, oldest first: their address and
/// how to close them.
#[derive(Default)]
struct Lobby {
    next: u64,
    waiting: std::collections::BTreeMap<u64, (std::net::IpAddr, Arc<tokio::sync::Notify>)>,
}

/// A connection's place in the lobby while it has not authenticated; it leaves on
/// authentication or when dropped. `closed` fires when a newcomer evicted it.
struct LobbySlot {
    shared: Arc<Shared>,
    id: u64,
    closed: Arc<tokio::sync::Notify>,
}

impl Drop for LobbySlot {
    fn drop(&mut self) {
        if let Ok(mut l) = self.shared.lobby.lock() {
            l.waiting.remove(&self.id);
        }
    }
}

/// An authenticated connection counted against its agent while it lives.
struct AgentConn {
    shared: Arc<Shared>,
    who: String,
}

impl Drop for AgentConn {
    fn drop(&mut self) {
        if let Ok(mut m) = self.shared.agent_conns.lock()
            && let Some(n) = m.get_mut(&self.who)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.who);
            }
        }
    }
}

/// One connection: in the lobby until its first authenticated call, then its agent's.
struct ConnState {
    lobby: Mutex<Option<LobbySlot>>,
    agent: Mutex<Option<AgentConn>>,
}

impl ConnState {
    fn authenticated(&self) -> bool {
        self.agent.lock().map(|a| a.is_some()).unwrap_or(false)
    }
}

impl Shared {
    fn town(&self) -> Result<Town> {
        let pooled = self.towns.lock().ok().and_then(|mut v| v.pop());
        match pooled {
            Some(t) => Ok(t),
            None => Town::open_at(self.root.clone()),
        }
    }

    fn give_back(&self, t: Town) {
        if let Ok(mut v) = self.towns.lock()
            && v.len() < 8
        {
            v.push(t);
        }
    }

    /// Count a call of `agent` in flight: None when it has too many already (or, for a
    /// push, one push already).
    fn enter(self: &Arc<Self>, agent: &str, push: bool) -> Option<InFlight> {
        let mut m = self.in_flight.lock().ok()?;
        let (n, pushing) = m.entry(agent.to_string()).or_insert((0, false));
        if *n >= MAX_PER_AGENT || (push && *pushing) {
            return None;
        }
        *n += 1;
        if push {
            *pushing = true;
        }
        Some(InFlight {
            shared: self.clone(),
            agent: agent.to_string(),
            push,
        })
    }

    /// A new connection from `ip` into the lobby; when the lobby is full, the oldest
    /// connection of the address holding the most places is closed to make room.
    fn arrive(self: &Arc<Self>, ip: std::net::IpAddr) -> LobbySlot {
        let closed = Arc::new(tokio::sync::Notify::new());
        let mut l = match self.lobby.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        if l.waiting.len() >= MAX_UNAUTHENTICATED {
            let mut per_ip: HashMap<std::net::IpAddr, usize> = HashMap::new();
            for (peer, _) in l.waiting.values() {
                *per_ip.entry(*peer).or_insert(0) += 1;
            }
            let most = per_ip.into_iter().max_by_key(|(_, n)| *n).map(|(p, _)| p);
            let victim = l
                .waiting
                .iter()
                .find(|(_, (peer, _))| Some(*peer) == most)
                .map(|(id, _)| *id);
            if let Some((_, (_, c))) = victim.and_then(|v| l.waiting.remove_entry(&v)) {
                c.notify_one();
            }
        }
        let id = l.next;
        l.next += 1;
        l.waiting.insert(id, (ip, closed.clone()));
        LobbySlot {
            shared: self.clone(),
            id,
            closed,
        }
    }

    /// `conn` authenticated as `who`: out of the lobby, counted against `who` (false
    /// when `who` holds its share of connections already). A connection stays its first
    /// agent's.
    fn admit(self: &Arc<Self>, conn: &ConnState, who: &str) -> bool {
        let Ok(mut agent) = conn.agent.lock() else {
            return false;
        };
        if agent.is_some() {
            return true;
        }
        let Ok(mut m) = self.agent_conns.lock() else {
            return false;
        };
        let n = m.entry(who.to_string()).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_AGENT {
            return false;
        }
        *n += 1;
        *agent = Some(AgentConn {
            shared: self.clone(),
            who: who.to_string(),
        });
        drop(m);
        if let Ok(mut l) = conn.lobby.lock() {
            l.take();
        }
        true
    }

    /// Take one token from an authenticated agent's bucket.
    fn allow(&self, agent: &str) -> bool {
        let Ok(mut b) = self.buckets.lock() else {
            return false;
        };
        let cap = self.rate * 4.0;
        let now = Instant::now();
        let (tokens, at) = b.entry(agent.to_string()).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(cap);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What `gt serve` binds and answers as.
pub struct Bound {
    pub listen: SocketAddr,
    pub url: String,
}

/// Run the endpoint until `stop` resolves (Ctrl-C, SIGTERM). `ready` is called once it
/// listens.
pub fn run(town: &Town, listen: Option<&str>, ready: &mut dyn FnMut(&Bound)) -> Result<()> {
    let url = town.config.serve.url.clone().ok_or_else(|| {
        Error::usage("gt serve needs serve.url in gt.toml: how agents reach it")
            .with_hint("e.g. url = \"https://10.0.0.5:7420\" under [serve]")
    })?;
    let ep = crate::agent::remote::Endpoint::parse(&url)
        .map_err(|why| Error::usage(format!("serve.url = {url:?} {why}")))?;
    let listen = listen.unwrap_or(&town.config.serve.listen);
    let addr: SocketAddr = listen
        .parse()
        .map_err(|_| Error::usage(format!("{listen:?} is not an address and port")))?;
    let (id, made) = super::pki::ensure(&town.root, &ep.host)?;
    say_made(made);
    limit_pack_indexing();
    let certs = Arc::new(Certs {
        current: std::sync::RwLock::new(Arc::new(certified_key(&id)?)),
    });
    let tls = server_tls(certs.clone())?;
    let loaded = pki_files(&town.root);
    let shared = Arc::new(Shared {
        root: town.root.clone(),
        towns: Mutex::new(Vec::new()),
        rate: f64::from(town.config.serve.rate),
        buckets: Mutex::new(HashMap::new()),
        in_flight: Mutex::new(HashMap::new()),
        lobby: Mutex::new(Lobby::default()),
        agent_conns: Mutex::new(HashMap::new()),
        pushes: tokio::sync::Semaphore::new(MAX_PUSHES),
        builds: tokio::sync::Semaphore::new(MAX_PACK_BUILDS),
    });
    let town_root = town.root.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting gt serve's runtime", e))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::io("reading the listening address", e))?;
        ready(&Bound { listen: local, url });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(watch_certs(certs, town_root, ep.host.clone(), loaded));
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::io("installing a signal handler", e))?;
        loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("gt serve: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
            };
            let lobby = shared.arrive(peer.ip());
            let closed = lobby.closed.clone();
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let acceptor = acceptor.clone();
            let shared = shared.clone();
            let conn = Arc::new(ConnState {
                lobby: Mutex::new(Some(lobby)),
                agent: Mutex::new(None),
            });
            tokio::spawn(async move {
                let _permit = permit;
                let state = conn.clone();
                let serve = async move {
                    let tls = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(s)) => s,
                        _ => return, // no TLS (or too slow): nothing to answer
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let (shared, conn) = (shared.clone(), conn.clone());
                        async move {
                            let r = tokio::time::timeout(CALL_DEADLINE, handle(shared, conn, req))
                                .await;
                            Ok::<_, std::convert::Infallible>(r.unwrap_or_else(|_| {
                                answer(StatusCode::REQUEST_TIMEOUT, "too slow".into())
                            }))
                        }
                    });
                    let c = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(hyper_util::rt::TokioIo::new(Stalls::new(tls)), svc);
                    if let Err(e) = c.await {
                        tracing::debug!("gt serve: connection from {peer}: {e}");
                    }
                };
                // Not authenticated within the header timeout of its arrival: closed.
                let unauthenticated_too_long = async {
                    tokio::time::sleep(HEADER_TIMEOUT).await;
                    if state.authenticated() {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = closed.notified() => {}
                    _ = unauthenticated_too_long => {}
                }
            });
        }
        Ok(())
    })
}

/// libgit2's indexer limits for this process (pushed packs are indexed here): at most
/// [`MAX_PACK_OBJECTS`] objects, none larger than an import takes once its deltas are
/// applied ([`crate::git::MAX_OBJECT_BYTES`]); refused before the object is built.
fn limit_pack_indexing() {
    // SAFETY: process-wide libgit2 options, set before any pack is indexed; each takes
    // one size_t vararg, as the libgit2 documentation gives them.
    unsafe {
        libgit2_sys::git_libgit2_opts(
            libgit2_sys::GIT_OPT_SET_PACK_MAX_OBJECTS as libc::c_int,
            MAX_PACK_OBJECTS as libc::size_t,
        );
        libgit2_sys::git_libgit2_opts(
            libgit2_sys::GIT_OPT_SET_PACK_MAX_OBJECT_SIZE as libc::c_int,
            crate::git::MAX_OBJECT_BYTES as libc::size_t,
        );
    }
}

/// The endpoint's certificate and key, swapped for a new pair when the town CA changes
/// under a running `gt serve` (see [`watch_certs`]).
#[derive(Debug)]
struct Certs {
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for Certs {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// The certificate chain and key of `id`, checked to belong together.
fn certified_key(id: &super::pki::Identity) -> Result<rustls::sign::CertifiedKey> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        Error::Other(format!("gt serve's TLS identity {}: {e}", what.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&id.cert)
        .map_err(|e| bad(&id.cert, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(&id.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&id.key).map_err(|e| bad(&id.key, &e))?;
    rustls::sign::CertifiedKey::from_der(certs, key, &rustls::crypto::ring::default_provider())
        .map_err(|e| bad(&id.cert, &e))
}

fn server_tls(certs: Arc<Certs>) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Other(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    Ok(Arc::new(cfg))
}

/// Tell the operator what [`super::pki::ensure`] made.
fn say_made(made: super::pki::Made) {
    use super::pki::Made;
    match made {
        Made::Nothing => {}
        Made::Certificate => tracing::warn!(
            "gt serve: issued a new endpoint certificate signed by the town CA in .gt/serve/ca.pem \
             (the one there was missing, for another host, or not signed by that CA)"
        ),
        Made::Both => tracing::warn!(
            "gt serve: there was no town CA: made a new one (.gt/serve/ca.pem) and an endpoint \
             certificate it signs; agents dispatched with an earlier CA cannot reach gt serve \
             until they are dispatched again"
        ),
    }
}

/// How often a running `gt serve` looks at the town's CA and certificate files.
const CERT_CHECK: Duration = Duration::from_secs(1);

/// The bytes of the town's CA certificate, CA key and endpoint certificate (None:
/// missing).
fn pki_files(root: &Path) -> [Option<Vec<u8>>; 3] {
    let d = super::pki::dir(root);
    ["ca.pem", "ca.key", "server.pem"].map(|f| std::fs::read(d.join(f)).ok())
}

/// Keep the served certificate one the current town CA signs: when the CA's or the
/// certificate's files change (a CA deleted and made anew by `gt sling` or by hand), make
/// what is missing, re-issue the certificate if it no longer verifies, and serve that.
async fn watch_certs(
    certs: Arc<Certs>,
    root: PathBuf,
    host: String,
    mut seen: [Option<Vec<u8>>; 3],
) {
    loop {
        tokio::time::sleep(CERT_CHECK).await;
        let (r, h, c, before) = (root.clone(), host.clone(), certs.clone(), seen.clone());
        let now = tokio::task::spawn_blocking(move || {
            let now = pki_files(&r);
            if now == before && now.iter().all(Option::is_some) {
                return now;
            }
            match super::pki::ensure(&r, &h).and_then(|(id, made)| Ok((certified_key(&id)?, made)))
            {
                Ok((key, made)) => {
                    say_made(made);
                    if let Ok(mut cur) = c.current.write() {
                        *cur = Arc::new(key);
                    }
                    pki_files(&r)
                }
                Err(e) => {
                    tracing::warn!(
                        "gt serve: the town CA or certificate changed and no new certificate \
                         could be made ({e}); serving the one loaded before"
                    );
                    now
                }
            }
        })
        .await;
        if let Ok(now) = now {
            seen = now;
        }
    }
}

fn answer(s: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = s;
    r
}

async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    match route(shared, conn, req).await {
        Ok(r) => r,
        Err(Refusal(s, m)) => answer(s, format!("{m}\n").into_bytes()),
    }
}

async fn route(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    req: Request<hyper::body::Incoming>,
) -> std::result::Result<Response<Body>, Refusal> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    if method == Method::GET && path == PATH_HEALTH {
        let body = serde_json::json!({ "ok": true, "version": env!("CARGO_PKG_VERSION") });
        return Ok(answer(StatusCode::OK, body.to_string().into_bytes()));
    }
    let known = match path.as_str() {
        PATH_BOX | PATH_REPO => method == Method::GET,
        PATH_REQUEST | PATH_ENDING | PATH_PUSH => method == Method::POST,
        _ => false,
    };
    if !known {
        return Err(refuse(StatusCode::NOT_FOUND, "no such call"));
    }
    let limit = crate::agent::remote::body_limit(&path);
    let h = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let token = h(hyper::header::AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "no credentials"))?;
    let agent = h(H_AGENT).ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "no agent named"))?;
    let generation: i64 = h(H_GENERATION)
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "no generation"))?;
    let head = h(H_HEAD);
    if agent.len() > 200 {
        return Err(refuse(StatusCode::UNAUTHORIZED, "not an agent"));
    }
    if let Some(n) = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && n > limit
    {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("over the {limit}-byte limit of this call"),
        ));
    }
    // Who it is, before a byte of the body is read.
    let s = shared.clone();
    let (a, t) = (agent.clone(), token.clone());
    let caller = blocking(move || authenticate(&s, &a, generation, &t)).await?;
    // Limits per authenticated agent: a caller naming another agent cannot spend its
    // share, and one agent cannot take everyone's.
    let who = format!("{}#{}", caller.agent.id, caller.dispatch.generation);
    if !shared.admit(&conn, &who) {
        return Err(refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many connections (at most {MAX_CONNECTIONS_PER_AGENT} per agent)"),
        ));
    }
    if !shared.allow(&who) {
        return Err(refuse(StatusCode::TOO_MANY_REQUESTS, "slow down"));
    }
    let push = path == PATH_PUSH;
    let _in_flight = shared.enter(&who, push).ok_or_else(|| {
        refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "too many calls in flight (one push at a time)",
        )
    })?;
    if path == PATH_REPO {
        let _build = shared
            .builds
            .acquire()
            .await
            .map_err(|_| refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
        let s = shared.clone();
        let (refs, pack) = blocking(move || {
            let town = s.town()?;
            let r = repo_pack(&town, &caller);
            s.give_back(town);
            r
        })
        .await?;
        return stream_pack(refs, &pack, _in_flight);
    }
    // A pack goes to disk as it arrives (up to 1 GiB: never whole in memory), into a
    // host-only staging directory beside the rig's repository.
    let (body, staging) = if push {
        let staging = crate::util::TempDir::new_in(
            &shared.root.join("rigs").join(&caller.agent.rig),
            "push",
        )?;
        spool_body(req.into_body(), limit, &staging.path().join(PUSHED)).await?;
        (Bytes::new(), Some(staging))
    } else {
        (read_body(req.into_body(), limit).await?, None)
    };
    // A push slot only once its pack has arrived: a body never sent holds none.
    let _push = if push {
        Some(
            shared
                .pushes
                .acquire()
                .await
                .map_err(|_| refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?,
        )
    } else {
        None
    };
    let s = shared.clone();
    blocking(move || {
        let town = s.town()?;
        let r = match path.as_str() {
            PATH_BOX => serve_box(&town, &caller),
            PATH_REQUEST => take_request(&town, &caller, &body),
            PATH_ENDING => take_ending(&town, &caller, &body),
            _ => match &staging {
                Some(st) => take_push(&town, &caller, head.as_deref(), st),
                None => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, "no pack")),
            },
        };
        s.give_back(town);
        r
    })
    .await
}

/// The file a pushed pack is spooled to, in its staging directory.
const PUSHED: &str = "pushed.pack";

/// The body into the new file `to`, at most `limit` bytes, each part within
/// [`BODY_IDLE`] of the last.
async fn spool_body(
    body: hyper::body::Incoming,
    limit: u64,
    to: &Path,
) -> std::result::Result<(), Refusal> {
    use std::io::Write;
    let mut body = http_body_util::Limited::new(body, limit as usize);
    let f = std::fs::File::create(to).map_err(|e| Error::io("spooling a pushed pack", e))?;
    let mut w = std::io::BufWriter::with_capacity(STREAM_CHUNK, f);
    loop {
        match tokio::time::timeout(BODY_IDLE, body.frame()).await {
            Err(_) => {
                return Err(refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body stalled for {}s", BODY_IDLE.as_secs()),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(chunk) = frame.into_data() {
                    tokio::task::block_in_place(|| w.write_all(&chunk))
                        .map_err(|e| Error::io("spooling a pushed pack", e))?;
                }
            }
        }
    }
    tokio::task::block_in_place(|| w.flush())
        .map_err(|e| Error::io("spooling a pushed pack", e))?;
    Ok(())
}

/// The body, at most `limit` bytes, each part within [`BODY_IDLE`] of the last.
async fn read_body(body: hyper::body::Incoming, limit: u64) -> std::result::Result<Bytes, Refusal> {
    let mut body = http_body_util::Limited::new(body, limit as usize);
    let mut data = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(BODY_IDLE, body.frame()).await {
            Err(_) => {
                return Err(refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("the body stalled for {}s", BODY_IDLE.as_secs()),
                ));
            }
            Ok(None) => return Ok(data.freeze()),
            Ok(Some(Err(e))) => return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, Refusal> + Send + 'static,
) -> std::result::Result<T, Refusal> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "gt serve failed"))?
}

/// Constant-time equality of two tokens.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authenticate(
    shared: &Shared,
    agent: &str,
    generation: i64,
    token: &str,
) -> std::result::Result<Caller, Refusal> {
    let town = shared.town()?;
    let r = (|| {
        let conn = town.db.conn();
        let nobody = || refuse(StatusCode::UNAUTHORIZED, "unknown agent or wrong token");
        let a = agents::get(conn, agent)
            .map_err(|e| town.db_err(e))?
            .ok_or_else(nobody)?;
        let d = match a.dispatch {
            Some(id) => dispatches::get(conn, id).map_err(|e| town.db_err(e))?,
            None => None,
        };
        // The token of the dispatch the caller claims, current or not: a stale container
        // is told so (it stops), anyone else learns nothing.
        let claimed = match &d {
            Some(d) if d.generation == generation => Some(d.clone()),
            _ => dispatches::for_agent_generation(conn, agent, generation)
                .map_err(|e| town.db_err(e))?,
        };
        let claimed = claimed.ok_or_else(nobody)?;
        if !same_token(&claimed.token, token) {
            return Err(nobody());
        }
        let current = d.filter(|d| d.id == claimed.id && d.ended_at.is_none());
        let Some(dispatch) = current else {
            return Err(refuse(
                StatusCode::CONFLICT,
                format!(
                    "stale: generation {generation} of {agent} is over (now generation {})",
                    a.generation
                ),
            ));
        };
        Ok(Caller { agent: a, dispatch })
    })();
    shared.give_back(town);
    r
}

fn json(v: &impl serde::Serialize) -> std::result::Result<Response<Body>, Refusal> {
    let data = serde_json::to_vec(v).map_err(|e| Error::Other(e.to_string()))?;
    Ok(answer(StatusCode::OK, data))
}

fn serve_box(town: &Town, c: &Caller) -> std::result::Result<Response<Body>, Refusal> {
    let p = super::workspace::places(town, &c.agent.rig, &c.agent.name);
    let assignment = crate::agent::Assignment::read(&p.box_dir)?;
    if assignment.generation != c.dispatch.generation {
        return Err(refuse(
            StatusCode::CONFLICT,
            "stale: the assignment moved on",
        ));
    }
    // Host-written files, read as everything in an agent's places is: no link followed,
    // regular files only, bounded.
    let text = |v: Vec<u8>| String::from_utf8_lossy(&v).into_owned();
    let mut inbox = Vec::new();
    if let Ok(dir) = crate::untrusted::Dir::open(&p.box_dir.join("inbox")) {
        for e in dir.entries(MAX_INBOX).unwrap_or_default() {
            if !e.is_file || e.name.starts_with('.') {
                continue;
            }
            if let Ok(v) = dir.read(&e.name, crate::agent::request::MAX_REQUEST_BYTES) {
                inbox.push((e.name, text(v)));
            }
        }
    }
    inbox.sort();
    let stop = crate::untrusted::Dir::open(&p.box_dir)
        .ok()
        .and_then(|d| d.read(super::drain::STOP_FILE, 4096).ok())
        .map(text);
    let (secrets, _) =
        super::secret::mounted(&super::secret::agent_dir(town, &c.agent.rig, &c.agent.name));
    json(&BoxState {
        assignment,
        inbox,
        stop,
        secrets,
    })
}

/// The pack of the caller's branch and the rig's default branch, and their refs: built
/// once per pair of heads into `.gt/serve/packs/<rig>/` (host-only), reused by every
/// clone of the same heads (agents slung at once clone the same), the newest
/// [`PACKS_KEPT`] kept.
fn repo_pack(
    town: &Town,
    c: &Caller,
) -> std::result::Result<(Vec<(String, String)>, PathBuf), Refusal> {
    let rig = super::rig::get(town, &c.agent.rig)?;
    let repo = git2::Repository::open(town.repo_dir(&c.agent.rig)).map_err(Error::from)?;
    let mut refs = Vec::new();
    for b in [&c.dispatch.branch, &rig.default_branch] {
        if let Some(h) = crate::git::branch_head(&repo, b)? {
            refs.push((format!("refs/heads/{b}"), h));
        }
    }
    let mut heads: Vec<&str> = refs.iter().map(|(_, h)| h.as_str()).collect();
    heads.sort_unstable();
    heads.dedup();
    let key = git2::Oid::hash_object(git2::ObjectType::Blob, heads.join(" ").as_bytes())
        .map_err(Error::from)?;
    let dir = super::pki::dir(&town.root).join("packs").join(&c.agent.rig);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(format!("{key}.pack"));
    // One build per set of heads at a time: the second caller waits and reuses it.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{key}.lock")))
        .map_err(|e| Error::io("opening a pack's lock", e))?;
    lock.lock().map_err(|e| Error::io("locking a pack", e))?;
    if !path.is_file() {
        let tmp = dir.join(format!(".{key}.{}.tmp", crate::util::random_hex(4)));
        let built = (|| -> Result<()> {
            let mut walk = repo.revwalk()?;
            for h in &heads {
                walk.push(git2::Oid::from_str(h)?)?;
            }
            let mut pb = repo.packbuilder()?;
            pb.insert_walk(&mut walk)?;
            let f = std::fs::File::create(&tmp).map_err(|e| Error::io("creating a pack", e))?;
            let mut w = std::io::BufWriter::new(f);
            let mut failed = None;
            pb.foreach(|chunk| {
                use std::io::Write;
                match w.write_all(chunk) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(Error::io("writing a pack", e));
            }
            let f = w
                .into_inner()
                .map_err(|e| Error::io("writing a pack", e.into_error()))?;
            f.sync_all().map_err(|e| Error::io("writing a pack", e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io("installing a pack", e))?;
            Ok(())
        })();
        if let Err(e) = built {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        prune_packs(&dir);
    }
    // Served from this open file even if a later build prunes it.
    Ok((refs, path))
}

/// Keep the newest [`PACKS_KEPT`] packs of a rig's cache (and no stray temporary file).
fn prune_packs(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut packs = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(m) = e.metadata() else { continue };
        let age = m.modified().ok();
        if name.ends_with(".pack") {
            packs.push((age, e.path()));
        } else if name.ends_with(".tmp")
            && age
                .and_then(|a| a.elapsed().ok())
                .is_some_and(|a| a > Duration::from_secs(3600))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    packs.sort_by_key(|p| std::cmp::Reverse(p.0));
    for (_, p) in packs.into_iter().skip(PACKS_KEPT) {
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(p.with_extension("lock"));
    }
}

/// A connection's stream, failed when a write makes no progress for [`WRITE_TIMEOUT`]
/// (a reader that stopped reading): its connection is dropped, with what it buffered.
struct Stalls<T> {
    io: T,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Stalls<T> {
    fn new(io: T) -> Stalls<T> {
        Stalls { io, stalled: None }
    }

    fn watch<R>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        r: std::task::Poll<std::io::Result<R>>,
    ) -> std::task::Poll<std::io::Result<R>> {
        use std::future::Future;
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let s = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        if s.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the peer took nothing for {}s", WRITE_TIMEOUT.as_secs()),
            )));
        }
        std::task::Poll::Pending
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Stalls<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Stalls<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

/// A body fed from a bounded channel: what the connection has not taken yet is at most
/// [`STREAM_QUEUE`] chunks.
struct Channel {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    len: u64,
}

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, std::io::Error>>>
    {
        self.rx
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

/// Stream the pack at `path` as the answer, [`STREAM_CHUNK`] at a time from disk, the
/// call counted in flight until it is sent; an answer its reader does not take within
/// [`WRITE_TIMEOUT`] is cut off (and its connection, see [`Stalls`]).
fn stream_pack(
    refs: Vec<(String, String)>,
    path: &Path,
    in_flight: InFlight,
) -> std::result::Result<Response<Body>, Refusal> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        let _in_flight = in_flight;
        loop {
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; STREAM_CHUNK];
                let r = f.read(&mut buf).map(|n| {
                    buf.truncate(n);
                    buf
                });
                (f, r)
            })
            .await;
            let Ok((file, r)) = read else { return };
            f = file;
            let done = !matches!(&r, Ok(b) if !b.is_empty());
            let item = match r {
                Ok(b) if b.is_empty() => break,
                Ok(b) => Ok(Bytes::from(b)),
                Err(e) => Err(e),
            };
            match tokio::time::timeout(WRITE_TIMEOUT, tx.send(item)).await {
                Ok(Ok(())) if !done => {}
                _ => return, // sent an error, the reader is gone, or it stalled
            }
        }
    });
    let mut r = Response::new(Channel { rx, len }.boxed());
    let refs = serde_json::to_string(&refs).map_err(|e| Error::Other(e.to_string()))?;
    r.headers_mut().insert(
        H_REFS,
        refs.parse()
            .map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "bad refs"))?,
    );
    Ok(r)
}

fn take_request(
    town: &Town,
    c: &Caller,
    body: &[u8],
) -> std::result::Result<Response<Body>, Refusal> {
    let req: crate::agent::request::Request = serde_json::from_slice(body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("not a request: {e}")))?;
    let id_ok = !req.id.is_empty()
        && req.id.len() <= 64
        && req
            .id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if !id_ok {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "a request id is 1-64 of [A-Za-z0-9_-]",
        ));
    }
    if req.agent != c.agent.id || req.generation != c.dispatch.generation {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "a request names its own agent and generation",
        ));
    }
    let p = super::workspace::places(town, &c.agent.rig, &c.agent.name);
    std::fs::create_dir_all(&p.outbox).map_err(|e| Error::io("creating the outbox", e))?;
    // The body as it came (ingest reads it as untrusted data, as from a mounted outbox).
    crate::util::write_atomic(&p.outbox.join(format!("{}.json", req.id)), body)?;
    Ok(answer(StatusCode::ACCEPTED, b"queued\n".to_vec()))
}

fn take_ending(
    town: &Town,
    c: &Caller,
    body: &[u8],
) -> std::result::Result<Response<Body>, Refusal> {
    let e: crate::agent::Ending = serde_json::from_slice(body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("not an ending: {e}")))?;
    if e.generation != c.dispatch.generation {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "an ending names its own generation",
        ));
    }
    let p = super::workspace::places(town, &c.agent.rig, &c.agent.name);
    e.write_to(&p.outbox)?;
    Ok(answer(StatusCode::ACCEPTED, b"recorded\n".to_vec()))
}

/// A push: only the caller's branch, only while its dispatch works (not once it said
/// done), only fast-forward from the branch gt has; the objects go through the same
/// bounded import as a worktree's.
fn take_push(
    town: &Town,
    c: &Caller,
    head: Option<&str>,
    staging: &crate::util::TempDir,
) -> std::result::Result<Response<Body>, Refusal> {
    let head = head
        .filter(|h| crate::untrusted::is_hex(h, 40))
        .ok_or_else(|| refuse(StatusCode::BAD_REQUEST, "x-gt-head must be a commit id"))?;
    let rig = &c.agent.rig;
    let branch = &c.dispatch.branch;
    let repo_dir = town.repo_dir(rig);
    {
        use std::io::Write;
        let scratch = git2::Repository::init_bare(staging.path()).map_err(Error::from)?;
        let odb = scratch.odb().map_err(Error::from)?;
        let mut w = odb.packwriter().map_err(Error::from)?;
        let mut pack = std::fs::File::open(staging.path().join(PUSHED))
            .map_err(|e| Error::io("reading a pushed pack", e))?;
        std::io::copy(&mut pack, &mut w)
            .and_then(|_| w.flush())
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("not a pack: {e}")))?;
        w.commit().map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                format!("not a pack: {}", e.message()),
            )
        })?;
    }
    let objects = staging.path().join("objects");
    let repo = git2::Repository::open(&repo_dir).map_err(Error::from)?;
    let rig_row = super::rig::get(town, rig)?;
    // What this agent was given: its branch, the rig's default branch, the target it
    // was sent back from.
    let given_now = || -> std::result::Result<[Option<String>; 3], Refusal> {
        let base = crate::git::branch_head(&repo, branch)?
            .ok_or_else(|| refuse(StatusCode::CONFLICT, format!("branch {branch} is gone")))?;
        let default_head = crate::git::branch_head(&repo, &rig_row.default_branch)?;
        let onto = std::fs::read_to_string(super::mq::land::rebase_marker(town, rig, branch))
            .ok()
            .map(|s| s.trim().to_string());
        Ok([Some(base), default_head, onto])
    };
    let verify = |given: &[Option<String>; 3]| {
        let given: Vec<&str> = given.iter().flatten().map(String::as_str).collect();
        crate::git::verify_pushed(&repo_dir, &objects, head, &given)
            .map_err(|e| refuse(StatusCode::CONFLICT, e.to_string()))
    };
    // Only work built on what this agent was given, with trees git would check out;
    // then its objects go into the rig's object store as one pack: the pushed pack
    // itself when it carries only them, else a pack of just them. All of it without the
    // rig's git lock: objects nothing names change nothing.
    works(town, c)?;
    let given = given_now()?;
    let (unused, used) = verify(&given)?;
    if unused == 0 {
        crate::git::install_packs(&repo_dir, &objects)?;
    } else {
        crate::git::write_pack_of(&repo_dir, &objects, &used)?;
    }
    drop(used);
    // Under the rig's git lock, which the done saga holds while it takes the branch over:
    // a push lands before its `verified` step or not at all (as a mounted worktree's
    // commits count until its container has stopped). Only the branch moves here.
    let _lock = crate::git::lock(&repo_dir)?;
    works(town, c)?;
    let now = given_now()?;
    if now != given {
        verify(&now)?; // what it was given moved meanwhile (rare): checked again
    }
    let [Some(base), _, onto] = now else {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!("branch {branch} is gone"),
        ));
    };
    crate::git::import_work(&repo_dir, &objects, branch, &base, head, onto.as_deref())
        .map_err(|e| refuse(StatusCode::CONFLICT, e.to_string()))?;
    // The agent's private ref follows, so the done saga's import finds nothing new.
    super::workspace::claim_head(town, rig, &c.agent.name, branch, head)?;
    tracing::info!("gt serve: {} pushed {branch} to {head}", c.agent.id);
    Ok(answer(StatusCode::OK, format!("{head}\n").into_bytes()))
}

/// Whether the caller's dispatch still takes pushes: its agent works (not once its done
/// saga verified the branch).
fn works(town: &Town, c: &Caller) -> std::result::Result<(), Refusal> {
    let state = agents::get(town.db.conn(), &c.agent.id)
        .map_err(|e| town.db_err(e))?
        .map(|a| a.state)
        .unwrap_or_default();
    let verified = crate::state::checkpoints::step(town.db.conn(), c.dispatch.id, "verified")
        .map_err(|e| town.db_err(e))?
        .is_some();
    let works =
        matches!(state.as_str(), "spawning" | "running") || (state == "finishing" && !verified);
    if !works {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!("{} is {state}: its branch takes no more pushes", c.agent.id),
        ));
    }
    Ok(())
}

/// `GET /health` of the town's endpoint, with the town CA: Ok(version) or why not. When
/// it answers only to a client that skips the certificate check, it says so: gt serve
/// runs, but with a certificate the town CA (the one agents are given) does not sign.
pub fn check_health(town: &Town, timeout: Duration) -> std::result::Result<String, String> {
    let url = town
        .config
        .serve
        .url
        .clone()
        .ok_or_else(|| "serve.url is not set".to_string())?;
    let ca = std::fs::read_to_string(super::pki::dir(&town.root).join("ca.pem"))
        .map_err(|_| "no town CA yet: `gt serve` has never run".to_string())?;
    let client =
        crate::agent::remote::Client::new(&url, &ca, "-", 0, "-").map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    loop {
        match client.call(Method::GET, PATH_HEALTH, None, Vec::new()) {
            Ok(a) => {
                let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
                return Ok(v["version"].as_str().unwrap_or("?").to_string());
            }
            Err(e) if Instant::now() >= deadline => {
                let host = crate::agent::remote::Endpoint::parse(&url)
                    .map(|ep| ep.host)
                    .unwrap_or_default();
                let files = super::pki::consistent(&town.root, &host).err();
                return Err(match crate::agent::remote::answers_unverified(&url) {
                    Some(version) => format!(
                        "{url} runs (gt {version}) but its certificate does not verify against \
                         the town CA in .gt/serve/ca.pem, the one agents trust{}: agents cannot \
                         reach it; restart gt serve (it re-issues its certificate)",
                        files.map(|w| format!(" ({w})")).unwrap_or_default()
                    ),
                    None => format!("{url}: {e}"),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", "a"));
    }
}
