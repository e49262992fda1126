//! The container runtime seam: what gt needs of Docker (or, later, Kubernetes).
//! Knows containers, labels and limits; knows nothing of SQL, beads or git.

pub mod docker;
pub mod swarm;

use crate::error::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Labels every gt container carries; `gt.town` scopes every list call.
pub const LABEL_TOWN: &str = "gt.town";
pub const LABEL_RIG: &str = "gt.rig";
pub const LABEL_AGENT: &str = "gt.agent";
pub const LABEL_GENERATION: &str = "gt.generation";

/// Docker refuses a container memory limit below 6 MiB.
pub const MIN_MEMORY: i64 = 6 << 20;
/// Docker refuses fewer than 0.01 CPUs.
pub const MIN_CPUS: f64 = 0.01;
/// A CPU limit past this is a typo, not a machine.
pub const MAX_CPUS: f64 = 1024.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// A tmpfs mounted at `target` with Docker's mount options (`size=64m,mode=1777`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tmpfs {
    pub target: String,
    pub options: String,
}

/// Output kept per agent container by the engine: a flood is cut here, not on the disk.
/// The json-file driver keeps up to `max-file` files of `max-size` (and a file of 20.10
/// told `max-file=1` still keeps one rotated file beside the current one), each at most
/// one entry over: 2 × 4.9 MB stays within the 10 MB promised, with the last 4.9 MB or
/// more of a flood always kept.
pub const LOG_MAX_SIZE: &str = "4900k";
/// Log files kept per agent container (the current one and one rotated).
pub const LOG_MAX_FILES: &str = "2";

/// Everything needed to create an agent container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub binds: Vec<Bind>,
    /// Tmpfs mounts (`/tmp` always, with nosuid and nodev).
    pub tmpfs: Vec<Tmpfs>,
    /// The image's filesystem read-only (the rig's default).
    pub read_only_root: bool,
    pub workdir: String,
    /// "uid:gid"
    pub user: String,
    pub memory: i64,
    pub cpus: f64,
    pub pids: i64,
    /// Docker network mode; None leaves the engine's default.
    pub network: Option<String>,
    /// Swarm placement constraints (`node.labels.gpu==true`); a single engine has one
    /// place and ignores them.
    pub placement: Vec<String>,
    /// Environment values to keep out of the container's configuration where the
    /// runtime can: a Swarm service gets each as a Swarm secret, a file at
    /// [`secret_env_file`] (its spec and `docker service inspect` name none); a single
    /// engine, whose configuration is as private as the files it would read, sets them
    /// as environment. Read inside with [`secret_env`].
    pub secret_env: Vec<(String, String)>,
    /// A minimal init as process 1 (reaps zombies, forwards signals); false: `cmd` is
    /// process 1 itself, which nothing inside the container can signal (a gate's
    /// script relies on it to tell a stop from outside from its test's own exit).
    pub init: bool,
}

/// Where a runtime that delivers [`ContainerSpec::secret_env`] as files puts `key`'s.
pub fn secret_env_file(key: &str) -> std::path::PathBuf {
    std::path::Path::new("/run/secrets").join(key.to_ascii_lowercase())
}

/// Inside a container: `key` from the environment, or from its secret file.
pub fn secret_env(key: &str) -> Option<String> {
    std::env::var(key).ok().or_else(|| {
        std::fs::read_to_string(secret_env_file(key))
            .ok()
            .map(|s| s.trim().to_string())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    Running,
    Exited,
    Other,
}

/// A container as the runtime reports it. `exit_code` and `oom` are only known from
/// `inspect` (a list call reports neither reliably).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observed {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub state: RunState,
    pub exit_code: Option<i64>,
    pub oom: bool,
    /// When it exited (epoch ms), from `inspect`.
    pub finished_at: Option<i64>,
    /// Why the runtime could not run it, when it says (a Swarm task rejected because
    /// its node lacks the image or a mounted path; a container the engine failed to start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Observed {
    pub fn generation(&self) -> Option<i64> {
        self.labels
            .get(LABEL_GENERATION)
            .and_then(|g| g.parse().ok())
    }
}

/// Runtime errors the use cases decide on.
#[derive(Debug)]
pub enum CreateError {
    /// A container with this name exists already (maybe ours from a crashed attempt).
    NameInUse,
    Other(crate::error::Error),
}

/// Where a town's agents run (`[runtime] kind` in gt.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Containers on the Docker engine at `DOCKER_HOST`.
    #[default]
    Docker,
    /// One Swarm service per dispatch, through the manager at `DOCKER_HOST`.
    Swarm,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Docker => "docker",
            RuntimeKind::Swarm => "swarm",
        }
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "docker" => Ok(RuntimeKind::Docker),
            "swarm" => Ok(RuntimeKind::Swarm),
            _ => Err("must be \"docker\" or \"swarm\"".into()),
        }
    }
}

/// The town's runtime settings (`[runtime]` in gt.toml).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConfig {
    pub kind: RuntimeKind,
}

/// The runtime the town's settings name, connected.
pub fn connect(config: &RuntimeConfig) -> Result<Box<dyn Runtime>> {
    Ok(match config.kind {
        RuntimeKind::Docker => Box::new(docker::DockerRuntime::connect()?),
        RuntimeKind::Swarm => Box::new(swarm::SwarmRuntime::connect()?),
    })
}

/// [`connect`] with `timeout` for every call: a quick "does the engine answer?".
pub fn connect_within(config: &RuntimeConfig, timeout: Duration) -> Result<Box<dyn Runtime>> {
    Ok(match config.kind {
        RuntimeKind::Docker => Box::new(docker::DockerRuntime::connect_within(timeout)?),
        RuntimeKind::Swarm => Box::new(swarm::SwarmRuntime::connect_within(timeout)?),
    })
}

/// The engine's `tail` parameter for the last `n` lines: "all" for `usize::MAX`.
pub fn tail_param(n: usize) -> String {
    if n == usize::MAX {
        "all".into()
    } else {
        n.to_string()
    }
}

pub trait Runtime: Send + Sync {
    /// Create (not start) a container; returns its id. A runtime whose create already
    /// runs it (a Swarm service is scheduled at once) says so in [`starts_on_create`].
    ///
    /// [`starts_on_create`]: Runtime::starts_on_create
    fn create(&self, spec: &ContainerSpec) -> std::result::Result<String, CreateError>;
    fn start(&self, id: &str) -> Result<()>;
    /// Every container (running or not) carrying `gt.town=<town_id>`: a constant number of
    /// API calls whatever their number (one on Docker; services, tasks and nodes on Swarm).
    fn list(&self, town_id: &str) -> Result<Vec<Observed>>;
    /// One container by id or name; None when it does not exist.
    fn inspect(&self, id: &str) -> Result<Option<Observed>>;
    /// Stop (SIGTERM, then SIGKILL after `grace`) and remove; absent is fine.
    fn remove(&self, id: &str, grace: Duration) -> Result<()>;
    /// Stop (SIGTERM, then SIGKILL after `grace`) without removing: its output stays
    /// readable until `remove`. Absent or ended already is fine. A runtime that cannot
    /// keep a stopped container (a Swarm service) leaves the stop to `remove`. Many at
    /// once: [`stop_all`].
    fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    /// The last `tail` lines of output (stdout and stderr); `usize::MAX`: all of it.
    fn logs(&self, id: &str, tail: usize) -> Result<String>;
    /// Whether the engine has `image` (gt never pulls).
    fn image_exists(&self, image: &str) -> Result<bool>;
    /// When the container last wrote output (epoch ms); None when it never did.
    fn last_output_at(&self, id: &str) -> Result<Option<i64>>;
    /// Follow the output (the last `tail` lines, then what it writes) until it ends,
    /// each chunk to `each`.
    fn follow_logs(
        &self,
        id: &str,
        tail: usize,
        each: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()>;
    /// Whether `create` already runs the agent (then an undone dispatch may have worked).
    fn starts_on_create(&self) -> bool {
        false
    }
}

/// Stops `stop_all` has in flight at once (each is one engine call that waits).
const STOP_PARALLEL: usize = 16;

/// [`Runtime::stop`] every container of `ids` at once: they share one grace, so
/// stopping N agents that ignore SIGTERM takes one grace, not N (up to
/// `STOP_PARALLEL` at a time). One result per id, in order.
pub fn stop_all(rt: &dyn Runtime, ids: &[&str], grace: Duration) -> Vec<Result<()>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(STOP_PARALLEL) {
        std::thread::scope(|s| {
            let running: Vec<_> = chunk
                .iter()
                .map(|id| s.spawn(move || rt.stop(id, grace)))
                .collect();
            for (h, id) in running.into_iter().zip(chunk) {
                out.push(h.join().unwrap_or_else(|_| {
                    Err(crate::error::Error::Other(format!(
                        "stopping container {id}: the stop panicked"
                    )))
                }));
            }
        });
    }
    out
}
