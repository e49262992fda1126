//! `gt.toml`: town-wide defaults. Parsed with serde, then validated into typed values
//! with errors that name the offending key. Rig settings live in the database, not here.

use crate::error::{Error, Result};
use crate::runtime::{MAX_CPUS, MIN_CPUS, MIN_MEMORY};
use crate::util::{check_duration, parse_size};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The file `gt init` writes: every key, with what it means.
pub const DEFAULT_TOML: &str = r#"# gt town configuration. Rig settings live in the town database (see `gt rig add`);
# these are the defaults every new rig starts from.

[defaults]
image = "gt-agent:latest"                 # the agent container image (built locally)
# The agent command, run inside the container by `gt agent run --`. Until a rig says
# which agent it runs, its agents stop at once saying so: set one up with
# `gt rig add|set RIG --agent claude` (or codex; the key: `gt secret set NAME`),
# or give your own `--image` and `--command`.
command = "echo 'no agent configured: gt rig set RIG --agent claude|codex or --command CMD' >&2; exit 64"
memory = "4g"                             # container memory limit (k, m, g)
cpus = 2.0                                # container CPU limit
max_polecats = 4                          # agents a rig runs at once; more beads wait queued
max_attempts = 3                          # dispatches of one bead before it gives up
retry_backoff = ["0s", "30s", "2m", "5m"] # wait before re-dispatch n (last one repeats)
spawn_timeout = "3m"                      # a spawning agent younger than this is left alone
on_exhausted = "failed"                   # or "escalated"
max_cost_per_bead = 0.0                   # USD agents may spend on one bead (as their CLI
                                          #   reports it); crossed: no more dispatches of it
max_cost_per_day = 0.0                    # USD per rig in any 24 hours; crossed: no new dispatches
                                          #   (running agents go on); 0.0: no limit
max_cost_per_dispatch = 0.0               # USD one dispatch may report; more is kept as this
                                          #   much, flagged, and the mayor told; 0.0: no cap

[patrol]
interval = "30s"                          # for `gt patrol --watch`
lease = "2m"                              # a pass holds the patrol lease this long past its last write
breaker_failures = 20                     # more failed dispatches in breaker_window pause
breaker_window = "30m"                    #   new dispatches and mail the mayor once
stale_after = "10m"                       # `gt status` warns when work waits on a patrol
                                          #   that has not finished a pass for this long
push_timeout = "60s"                      # a git push or ls-remote still running then is
                                          #   stopped and retried on a later pass (at most
                                          #   half the lease, which is renewed before each)
stall_timeout = "30m"                     # a running agent with no output and no request
                                          #   this long is nudged through its inbox, then,
                                          #   silent as long again, stopped and re-dispatched
                                          #   (counted as an attempt); "0s": off
gate_timeout = "30m"                      # a merge request's gate running longer is
                                          #   stopped and counts as failing
gate_disk = "2g"                          # a gate's /work: a tmpfs of this size (counted
                                          #   in the rig's memory limit) holding a copy of
                                          #   the checkout; a change whose files exceed it
                                          #   is sent back
broken_target_recheck = "30m"             # a target that failed its gate alone is tried
                                          #   again after this long (or at once when the
                                          #   rig's gate settings change)
engine_timeout = "60s"                    # one Docker call that takes longer counts as the
                                          #   engine being down (exit 5, one escalation)
quiet_after = "30m"                       # a running agent that sends nothing (checkpoint,
                                          #   mail, done) this long is reported once; "0s": off

[runtime]
kind = "docker"                           # where agents run: "docker" (containers on the
                                          #   engine at DOCKER_HOST) or "swarm" (one Swarm
                                          #   service per dispatch; DOCKER_HOST is a manager,
                                          #   every node sees this town at the same path)
workspace = "mount"                       # "mount": the agent's worktree and mailbox are
                                          #   host paths mounted into its container (every
                                          #   node must see this town at the same path);
                                          #   "clone": nothing of the host is mounted: the
                                          #   agent clones its branch from `gt serve`, pushes
                                          #   it back there (fast-forward only) and sends its
                                          #   requests over it; needs [serve] url and gt in
                                          #   the image (`gt image build` puts it there)

[serve]
listen = "0.0.0.0:7420"                   # where `gt serve` listens (TLS, town CA)
url = ""                                  # how agents reach it, e.g. "https://10.0.0.5:7420";
                                          #   its host goes into the endpoint's certificate
rate = 50                                 # requests per second one agent may make (burst 4x)
patience = "5m"                           # an agent that cannot reach it retries this long,
                                          #   then exits 69 ("gt serve was unreachable")
"#;

/// The default agent command: the default image (busybox) runs no coding agent, so an
/// agent of a rig set up without --agent or --command says so and exits 64.
pub const NO_AGENT: &str =
    "echo 'no agent configured: gt rig set RIG --agent claude|codex or --command CMD' >&2; exit 64";

/// The shortest wait between patrol passes (`patrol.interval`, `gt patrol --interval`).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest patrol lease: a pass must be able to write once before it expires.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub defaults: Defaults,
    pub patrol: Patrol,
    pub runtime: crate::runtime::RuntimeConfig,
    pub workspace: WorkspaceMode,
    pub serve: Serve,
}

/// How an agent's container gets its work (`[runtime] workspace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceMode {
    /// Host paths mounted: the worktree, the mailbox, the private git state.
    #[default]
    Mount,
    /// Nothing of the host mounted: clone from `gt serve`, push back to it.
    Clone,
}

/// `[serve]`: the agents' network endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Serve {
    pub listen: String,
    /// How agents reach it; None when not set (then no agent can work in clone mode).
    pub url: Option<String>,
    /// Requests per second per agent (bursts of 4x).
    pub rate: u32,
    /// How long an agent retries an unreachable endpoint before it gives up.
    pub patience: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub image: String,
    pub command: String,
    pub memory: i64,
    pub cpus: f64,
    pub max_polecats: u32,
    pub max_attempts: u32,
    pub retry_backoff: Vec<Duration>,
    pub spawn_timeout: Duration,
    pub on_exhausted: OnExhausted,
    /// USD; 0.0 is no limit.
    pub max_cost_per_bead: f64,
    /// Per rig: a rig is refused new dispatches for its own agents' spend in the last
    /// 24 hours only (a reported cost is the agent's word: it never stops another rig).
    pub max_cost_per_day: f64,
    pub max_cost_per_dispatch: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExhausted {
    Failed,
    Escalated,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Patrol {
    pub interval: Duration,
    pub lease: Duration,
    pub breaker_failures: u32,
    pub breaker_window: Duration,
    pub stale_after: Duration,
    pub quiet_after: Duration,
    pub push_timeout: Duration,
    pub engine_timeout: Duration,
    pub stall_timeout: Duration,
    pub gate_timeout: Duration,
    /// Bytes of a gate's /work tmpfs.
    pub gate_disk: i64,
    pub broken_target_recheck: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    patrol: RawPatrol,
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default)]
    serve: RawServe,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    url: String,
    #[serde(default = "default_rate")]
    rate: i64,
    #[serde(default = "default_patience")]
    patience: String,
}

fn default_patience() -> String {
    "5m".into()
}

fn default_listen() -> String {
    "0.0.0.0:7420".into()
}

fn default_rate() -> i64 {
    50
}

impl Default for RawServe {
    fn default() -> Self {
        RawServe {
            listen: default_listen(),
            url: String::new(),
            rate: default_rate(),
            patience: default_patience(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    #[serde(default = "default_kind")]
    kind: String,
    #[serde(default = "default_workspace")]
    workspace: String,
}

fn default_workspace() -> String {
    "mount".into()
}

fn default_kind() -> String {
    "docker".into()
}

impl Default for RawRuntime {
    fn default() -> Self {
        RawRuntime {
            workspace: default_workspace(),
            kind: default_kind(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDefaults {
    image: String,
    command: String,
    memory: String,
    cpus: f64,
    max_polecats: i64,
    max_attempts: i64,
    retry_backoff: Vec<String>,
    spawn_timeout: String,
    on_exhausted: String,
    max_cost_per_bead: f64,
    max_cost_per_day: f64,
    max_cost_per_dispatch: f64,
}

impl Default for RawDefaults {
    fn default() -> Self {
        RawDefaults {
            image: "gt-agent:latest".into(),
            command: NO_AGENT.into(),
            memory: "4g".into(),
            cpus: 2.0,
            max_polecats: 4,
            max_attempts: 3,
            retry_backoff: ["0s", "30s", "2m", "5m"].map(String::from).to_vec(),
            spawn_timeout: "3m".into(),
            on_exhausted: "failed".into(),
            max_cost_per_bead: 0.0,
            max_cost_per_day: 0.0,
            max_cost_per_dispatch: 0.0,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPatrol {
    interval: String,
    lease: String,
    breaker_failures: i64,
    breaker_window: String,
    stale_after: String,
    quiet_after: String,
    push_timeout: String,
    engine_timeout: String,
    stall_timeout: String,
    gate_timeout: String,
    gate_disk: String,
    broken_target_recheck: String,
}

impl Default for RawPatrol {
    fn default() -> Self {
        RawPatrol {
            interval: "30s".into(),
            lease: "2m".into(),
            breaker_failures: 20,
            breaker_window: "30m".into(),
            stale_after: "10m".into(),
            quiet_after: "30m".into(),
            push_timeout: "60s".into(),
            engine_timeout: "60s".into(),
            stall_timeout: "30m".into(),
            gate_timeout: "30m".into(),
            gate_disk: "2g".into(),
            broken_target_recheck: "30m".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        // The built-in defaults are valid by construction (a unit test proves it).
        parse(DEFAULT_TOML, Path::new("gt.toml")).unwrap_or_else(|e| panic!("{e}"))
    }
}

pub fn load(path: &Path) -> Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        // A town without gt.toml uses the built-in defaults.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let bad = |msg: String| Error::Config {
        path: path.to_path_buf(),
        msg,
    };
    let raw: Raw = toml::from_str(text)
        .map_err(|e| bad(e.message().to_string() + &span_note(text, e.span())))?;
    let d = raw.defaults;
    let p = raw.patrol;
    // Every duration is range-checked here, where it is given: a zero interval would
    // spin, a zero lease would never hold, and a huge one would overflow the clock.
    let dur_min = |key: &str, v: &str, min: Duration| {
        check_duration(v, min).map_err(|why| bad(format!("{key} = {v:?} {why}")))
    };
    let dur = |key: &str, v: &str| dur_min(key, v, Duration::ZERO);
    let secs = Duration::from_secs;
    let count = |key: &str, v: i64, min: i64| {
        if v < min || v > 10_000 {
            Err(bad(format!("{key} = {v} is out of range ({min}..=10000)")))
        } else {
            Ok(v as u32)
        }
    };
    if d.image.trim().is_empty() {
        return Err(bad("defaults.image is empty".into()));
    }
    if d.command.trim().is_empty() {
        return Err(bad("defaults.command is empty".into()));
    }
    if !(MIN_CPUS..=MAX_CPUS).contains(&d.cpus) {
        return Err(bad(format!(
            "defaults.cpus = {} is outside {MIN_CPUS}..={MAX_CPUS} (Docker's minimum is 0.01)",
            d.cpus
        )));
    }
    let memory = parse_size(&d.memory).ok_or_else(|| {
        bad(format!(
            "defaults.memory = {:?} is not a size (use e.g. 512m, 4g)",
            d.memory
        ))
    })?;
    if memory < MIN_MEMORY {
        return Err(bad(format!(
            "defaults.memory = {:?} is below Docker's minimum container memory of 6 MiB (6m)",
            d.memory
        )));
    }
    if d.retry_backoff.is_empty() {
        return Err(bad(
            "defaults.retry_backoff must list at least one duration".into(),
        ));
    }
    let patrol = Patrol {
        interval: dur_min("patrol.interval", &p.interval, MIN_INTERVAL)?,
        lease: dur_min("patrol.lease", &p.lease, MIN_LEASE)?,
        breaker_failures: count("patrol.breaker_failures", p.breaker_failures, 1)?,
        breaker_window: dur_min("patrol.breaker_window", &p.breaker_window, secs(1))?,
        stale_after: dur_min("patrol.stale_after", &p.stale_after, secs(1))?,
        quiet_after: dur("patrol.quiet_after", &p.quiet_after)?,
        push_timeout: dur_min("patrol.push_timeout", &p.push_timeout, secs(1))?,
        engine_timeout: dur_min("patrol.engine_timeout", &p.engine_timeout, secs(1))?,
        stall_timeout: dur("patrol.stall_timeout", &p.stall_timeout)?,
        gate_timeout: dur_min("patrol.gate_timeout", &p.gate_timeout, secs(1))?,
        gate_disk: parse_size(&p.gate_disk)
            .filter(|&n| n >= 1 << 20)
            .ok_or_else(|| {
                bad(format!(
                    "patrol.gate_disk = {:?} is not a size of at least 1m (use e.g. 512m, 2g)",
                    p.gate_disk
                ))
            })?,
        broken_target_recheck: dur_min(
            "patrol.broken_target_recheck",
            &p.broken_target_recheck,
            secs(1),
        )?,
    };
    let runtime =
        crate::runtime::RuntimeConfig {
            kind: raw.runtime.kind.parse().map_err(|why: String| {
                bad(format!("runtime.kind = {:?} {why}", raw.runtime.kind))
            })?,
        };
    let workspace = match raw.runtime.workspace.as_str() {
        "mount" => WorkspaceMode::Mount,
        "clone" => WorkspaceMode::Clone,
        other => {
            return Err(bad(format!(
                "runtime.workspace = {other:?} must be \"mount\" or \"clone\""
            )));
        }
    };
    let s = &raw.serve;
    if s.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(bad(format!(
            "serve.listen = {:?} is not an address and port (like \"0.0.0.0:7420\")",
            s.listen
        )));
    }
    let url = (!s.url.is_empty()).then(|| s.url.clone());
    if let Some(u) = &url
        && crate::agent::remote::Endpoint::parse(u).is_err()
    {
        return Err(bad(format!(
            "serve.url = {u:?} must be https://HOST:PORT (gt serve speaks TLS only)"
        )));
    }
    if workspace == WorkspaceMode::Clone && url.is_none() {
        return Err(bad(
            "runtime.workspace = \"clone\" needs serve.url: how agents reach `gt serve`".into(),
        ));
    }
    let serve = Serve {
        listen: s.listen.clone(),
        url,
        rate: count("serve.rate", s.rate, 1)?,
        patience: dur_min("serve.patience", &s.patience, secs(1))?,
    };
    Ok(Config {
        runtime,
        workspace,
        serve,
        defaults: Defaults {
            memory,
            cpus: d.cpus,
            max_polecats: count("defaults.max_polecats", d.max_polecats, 1)?,
            max_attempts: count("defaults.max_attempts", d.max_attempts, 1)?,
            retry_backoff: d
                .retry_backoff
                .iter()
                .map(|v| dur("defaults.retry_backoff", v))
                .collect::<Result<_>>()?,
            spawn_timeout: dur_min("defaults.spawn_timeout", &d.spawn_timeout, secs(1))?,
            on_exhausted: match d.on_exhausted.as_str() {
                "failed" => OnExhausted::Failed,
                "escalated" => OnExhausted::Escalated,
                other => {
                    return Err(bad(format!(
                        "defaults.on_exhausted = {other:?} must be \"failed\" or \"escalated\""
                    )));
                }
            },
            max_cost_per_bead: money("defaults.max_cost_per_bead", d.max_cost_per_bead)
                .map_err(bad)?,
            max_cost_per_day: money("defaults.max_cost_per_day", d.max_cost_per_day)
                .map_err(bad)?,
            max_cost_per_dispatch: money("defaults.max_cost_per_dispatch", d.max_cost_per_dispatch)
                .map_err(bad)?,
            image: d.image,
            command: d.command,
        },
        patrol,
    })
}

/// A budget in USD: finite, not negative (0.0 is no limit).
fn money(key: &str, v: f64) -> std::result::Result<f64, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "{key} = {v} must be a number of dollars, 0.0 or more"
        ))
    }
}

fn span_note(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => format!(
            " (line {})",
            text[..r.start.min(text.len())].lines().count().max(1)
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_defaults_parse() {
        let c = parse(DEFAULT_TOML, Path::new("gt.toml")).unwrap();
        assert_eq!(c.defaults.memory, 4 << 30);
        assert_eq!(c.defaults.retry_backoff.len(), 4);
        assert_eq!(c.patrol.breaker_failures, 20);
        // The default image (busybox) cannot run a coding agent: the default command
        // says so instead of failing with "claude: not found".
        assert_eq!(c.defaults.command, NO_AGENT);
        assert_eq!(RawDefaults::default().command, NO_AGENT);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[defaults]\nmemory = \"4x\"\n", Path::new("gt.toml")).unwrap_err();
        assert!(e.to_string().contains("defaults.memory"), "{e}");
        let e = parse("[patrol]\nlease = \"soon\"\n", Path::new("gt.toml")).unwrap_err();
        assert!(e.to_string().contains("patrol.lease"), "{e}");
        let e = parse("[defaults]\nimmage = \"x\"\n", Path::new("gt.toml")).unwrap_err();
        assert!(e.to_string().contains("immage"), "{e}");
        let e = parse(
            "[defaults]\non_exhausted = \"boom\"\n",
            Path::new("gt.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("on_exhausted"), "{e}");
        let e = parse("[runtime]\nkind = \"k8s\"\n", Path::new("gt.toml")).unwrap_err();
        assert!(e.to_string().contains("runtime.kind"), "{e}");
    }

    #[test]
    fn the_runtime_is_docker_unless_the_town_says_swarm() {
        use crate::runtime::RuntimeKind;
        let c = parse("", Path::new("gt.toml")).unwrap();
        assert_eq!(c.runtime.kind, RuntimeKind::Docker);
        let c = parse("[runtime]\nkind = \"swarm\"\n", Path::new("gt.toml")).unwrap();
        assert_eq!(c.runtime.kind, RuntimeKind::Swarm);
    }

    #[test]
    fn mechanism_values_are_range_checked_naming_the_key() {
        for (toml, key, why) in [
            (
                "[patrol]\ninterval = \"0s\"\n",
                "patrol.interval",
                "minimum of 100ms",
            ),
            (
                "[patrol]\nlease = \"0s\"\n",
                "patrol.lease",
                "minimum of 1s",
            ),
            (
                "[patrol]\nlease = \"99999999999999h\"\n",
                "patrol.lease",
                "maximum of 10 years",
            ),
            (
                "[patrol]\nquiet_after = \"10000000000000000s\"\n",
                "patrol.quiet_after",
                "maximum",
            ),
            (
                "[defaults]\nspawn_timeout = \"0s\"\n",
                "defaults.spawn_timeout",
                "minimum",
            ),
            (
                "[defaults]\nretry_backoff = [\"0s\", \"99999999999999h\"]\n",
                "defaults.retry_backoff",
                "maximum",
            ),
            ("[defaults]\nmemory = \"1k\"\n", "defaults.memory", "6 MiB"),
            ("[defaults]\ncpus = 0.0\n", "defaults.cpus", "0.01"),
            ("[defaults]\ncpus = -1.0\n", "defaults.cpus", "0.01"),
        ] {
            let e = parse(toml, Path::new("gt.toml")).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::USAGE, "{toml}");
            let msg = e.to_string();
            assert!(msg.contains(key) && msg.contains(why), "{toml}: {msg}");
        }
        let c = parse(
            "[patrol]\ninterval = \"100ms\"\nlease = \"1s\"\nquiet_after = \"0s\"\n[defaults]\nmemory = \"6m\"\n",
            Path::new("gt.toml"),
        )
        .unwrap();
        assert_eq!(c.patrol.interval, MIN_INTERVAL);
        assert_eq!(c.defaults.memory, 6 << 20);
    }
}
