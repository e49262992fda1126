//! The Docker runtime over bollard. bollard is async; gt's use cases are synchronous,
//! so each call blocks on a small tokio runtime owned here (safe from many threads).

use super::{ContainerSpec, CreateError, Observed, RunState, Runtime};
use crate::error::{Error, Result};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountTmpfsOptions, MountType,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How long one engine call may take before the engine counts as unavailable
/// (`patrol.engine_timeout`; a hung engine costs at most this per call).
static CALL_TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

/// Set the engine call timeout for this process (once; the town's config sets it).
pub fn set_call_timeout(d: Duration) {
    let _ = CALL_TIMEOUT.set(d);
}

/// A container of the town ended (`die`), was OOM-killed (`oom`) or signalled through
/// the engine (`kill`).
#[derive(Debug, Clone)]
pub struct ContainerEvent {
    pub action: String,
    pub id: String,
    pub name: String,
}

pub struct DockerRuntime {
    pub(super) docker: Docker,
    pub(super) rt: tokio::runtime::Runtime,
}

impl DockerRuntime {
    /// Connect through `DOCKER_HOST` (or the default socket) and agree on an API version.
    pub fn connect() -> Result<DockerRuntime> {
        DockerRuntime::connect_within(*CALL_TIMEOUT.get().unwrap_or(&Duration::from_secs(60)))
    }

    /// [`connect`](Self::connect) with `timeout` for every call, this one included: a
    /// quick "does the engine answer?" for read commands (`gt status`), where a hung
    /// engine must cost seconds, not `patrol.engine_timeout`.
    pub fn connect_within(timeout: Duration) -> Result<DockerRuntime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime", e))?;
        let docker = Docker::connect_with_defaults()
            .map_err(|e| unavailable(&e))?
            .with_timeout(timeout);
        // Engines refuse clients newer than they are; older ones refuse newer clients.
        let docker = rt
            .block_on(async { tokio::time::timeout(timeout, docker.negotiate_version()).await })
            .map_err(|_| Error::RuntimeUnavailable {
                msg: format!(
                    "Docker at {} did not answer within {}",
                    host(),
                    crate::util::format_span(crate::util::millis(timeout))
                ),
                hint: Some(engine_hint()),
            })?
            .map_err(|e| unavailable(&e))?;
        Ok(DockerRuntime { docker, rt })
    }
}

pub fn host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

fn unavailable(e: &bollard::errors::Error) -> Error {
    Error::RuntimeUnavailable {
        msg: format!("cannot reach Docker at {}: {e}", host()),
        hint: Some(engine_hint()),
    }
}

/// The one step this machine lacks for an engine at [`host`], read from the machine
/// itself (the socket, the installed binaries): not installed, not running, not allowed,
/// or `DOCKER_HOST` pointing at an engine that is gone.
pub fn engine_hint() -> String {
    use std::io::ErrorKind;
    let host = host();
    let Some(path) = host.strip_prefix("unix://") else {
        return format!(
            "start the engine at {host}, or `unset DOCKER_HOST` for this machine's own engine"
        );
    };
    let from_env = std::env::var_os("DOCKER_HOST").is_some();
    if std::fs::symlink_metadata(path).is_ok() {
        return match std::os::unix::net::UnixStream::connect(path) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => format!(
                "you may not use the engine's socket {path}: `sudo usermod -aG docker $USER`, \
                 then log in again (or run gt as root)"
            ),
            Err(_) => format!(
                "{path} exists but no engine answers on it: restart the engine \
                 (`sudo service docker restart`)"
            ),
            Ok(_) => format!("the engine at {host} answers slowly: `docker info` says more"),
        };
    }
    if from_env && path.starts_with("/tmp/gt-dockerd.") {
        return format!(
            "DOCKER_HOST={host} is a private engine `bash dev.sh` started and stopped again: \
             `unset DOCKER_HOST` and use this machine's engine"
        );
    }
    if from_env {
        return format!(
            "nothing listens at DOCKER_HOST={host}: start that engine, or `unset DOCKER_HOST` \
             for this machine's own"
        );
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        let rootless = std::path::Path::new(&dir).join("docker.sock");
        if rootless.exists() {
            return format!(
                "a rootless engine runs at {}: `export DOCKER_HOST=unix://{}`",
                rootless.display(),
                rootless.display()
            );
        }
    }
    let installed = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .any(|d| d.join("dockerd").is_file());
    if installed {
        "Docker is installed but not running: `sudo service docker start` (or, with systemd, \
         `sudo systemctl enable --now docker`)"
            .into()
    } else {
        "no Docker engine is installed: `sudo apt-get install -y docker.io` (Debian, Ubuntu), \
         then `sudo service docker start`"
            .into()
    }
}

/// An answer from the engine is a runtime error; no answer means it is unavailable.
pub(super) fn classify(what: &str, e: bollard::errors::Error) -> Error {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => {
            let hint = if status_code == 404 && message.contains("network") {
                Some(
                    "create it (`docker network create NAME`) or change the rig's --network".into(),
                )
            } else if status_code == 404 && message.contains("image") {
                Some("build or load the image locally (`bash dev.sh image` builds gt-agent:latest); gt never pulls".into())
            } else {
                None
            };
            Error::Runtime {
                msg: format!("{what}: {message} (HTTP {status_code})"),
                hint,
            }
        }
        e => unavailable(&e),
    }
}

/// Bind mounts as structured mounts, not `src:dst:mode` strings: a town path holding
/// `:` or `,` stays one path. A source that does not exist is an error (Docker would
/// otherwise create it, as root).
pub(super) fn mounts(binds: &[super::Bind], tmpfs: &[super::Tmpfs]) -> Vec<Mount> {
    let binds = binds.iter().map(|b| Mount {
        typ: Some(MountType::BIND),
        source: Some(b.source.clone()),
        target: Some(b.target.clone()),
        read_only: Some(b.read_only),
        ..Default::default()
    });
    let tmpfs = tmpfs.iter().map(|t| {
        let mut size = None;
        let mut mode = None;
        for opt in t.options.split(',') {
            match opt.split_once('=') {
                Some(("size", v)) => size = crate::util::parse_size(v),
                Some(("mode", v)) => mode = i64::from_str_radix(v, 8).ok(),
                _ => {}
            }
        }
        Mount {
            typ: Some(MountType::TMPFS),
            target: Some(t.target.clone()),
            tmpfs_options: Some(MountTmpfsOptions {
                size_bytes: size,
                mode,
                // Docker mounts tmpfs nosuid,nodev,noexec unless told otherwise; agents
                // build and run code in /tmp, so exec stays (nosuid and nodev stay).
                options: Some(vec![vec!["exec".to_string()]]),
            }),
            ..Default::default()
        }
    });
    binds.chain(tmpfs).collect()
}

pub(super) fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

impl DockerRuntime {
    /// `docker import`: make image `image` from the root filesystem tarball `tar` (a host
    /// file, streamed), with Dockerfile-style `changes` (ENV, USER, LABEL, WORKDIR).
    pub fn import_rootfs(
        &self,
        tar: &std::path::Path,
        image: &str,
        changes: &[String],
    ) -> Result<()> {
        use std::io::Read;
        let file = std::fs::File::open(tar)
            .map_err(|e| Error::io(format!("opening {}", tar.display()), e))?;
        let chunks = futures_util::stream::unfold(file, |mut f| async move {
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(buf.into()), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let (repo, tag) = match image.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (image, "latest"),
        };
        let opts = bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .changes(changes.to_vec())
            .build();
        self.rt.block_on(async {
            let mut s =
                self.docker
                    .create_image(Some(opts), Some(bollard::body_try_stream(chunks)), None);
            while let Some(r) = s.next().await {
                r.map_err(|e| classify(&format!("importing image {image}"), e))?;
            }
            Ok(())
        })
    }

    /// Follow a container's output (the last `tail` lines, then what it writes) until it
    /// exits; each chunk goes to `each`.
    pub fn follow_logs(
        &self,
        id: &str,
        tail: usize,
        each: impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .tail(&tail.to_string())
            .build();
        // No call deadline here: following is meant to last (the engine ends the stream
        // when the container exits).
        let docker = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(u32::MAX as u64));
        self.stream_logs(&docker, id, opts, each)
    }

    /// Read a container's log stream, each chunk to `each`; a missing container is
    /// NotFound.
    fn stream_logs(
        &self,
        docker: &Docker,
        id: &str,
        opts: bollard::query_parameters::LogsOptions,
        mut each: impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        self.rt.block_on(async {
            let mut stream = docker.logs(id, Some(opts));
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => each(&c.to_string())?,
                    Err(e) if is_status(&e, 404) => {
                        return Err(Error::not_found(format!("container {id}"), None));
                    }
                    Err(e) => return Err(classify(&format!("reading logs of {id}"), e)),
                }
            }
            Ok(())
        })
    }

    /// Follow the engine's events of this town's containers (label `gt.town`: agents
    /// and merge-queue gates, labelled `gt.gate`, alike) that end one: `die`, `oom`, and
    /// `kill` (a signal sent through the engine: `docker kill`, `docker stop`). Each goes to `each`
    /// until it returns false; returns when the engine ends the stream or cannot be
    /// reached (the caller reconnects).
    pub fn container_events(
        &self,
        town_id: &str,
        mut each: impl FnMut(ContainerEvent) -> bool,
    ) -> Result<()> {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                vec!["die".to_string(), "oom".to_string(), "kill".to_string()],
            ),
            (
                "label".to_string(),
                vec![format!("{}={town_id}", super::LABEL_TOWN)],
            ),
        ]);
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        // No call deadline: the stream is meant to last.
        let docker = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(u32::MAX as u64));
        self.rt.block_on(async {
            let mut stream = docker.events(Some(opts));
            while let Some(e) = stream.next().await {
                let m = e.map_err(|e| classify("following the engine's events", e))?;
                let attrs = m
                    .actor
                    .as_ref()
                    .and_then(|a| a.attributes.clone())
                    .unwrap_or_default();
                let ev = ContainerEvent {
                    action: m.action.unwrap_or_default(),
                    id: m.actor.and_then(|a| a.id).unwrap_or_default(),
                    name: attrs.get("name").cloned().unwrap_or_default(),
                };
                if !each(ev) {
                    break;
                }
            }
            Ok(())
        })
    }

    /// The size of `image` in bytes, None when the engine does not have it.
    pub fn image_size(&self, image: &str) -> Result<Option<i64>> {
        match self.rt.block_on(self.docker.inspect_image(image)) {
            Ok(i) => Ok(i.size),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(classify(&format!("inspecting image {image}"), e)),
        }
    }
}

impl Runtime for DockerRuntime {
    fn create(&self, spec: &ContainerSpec) -> std::result::Result<String, CreateError> {
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let mounts = mounts(&spec.binds, &spec.tmpfs);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(spec.cmd.clone()),
            env: Some(
                spec.env
                    .iter()
                    .chain(&spec.secret_env)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ),
            working_dir: Some(spec.workdir.clone()),
            user: Some(spec.user.clone()),
            host_config: Some(HostConfig {
                mounts: Some(mounts),
                memory: Some(spec.memory),
                // No swap beyond the memory limit: an over-limit agent is OOM-killed.
                memory_swap: Some(spec.memory),
                nano_cpus: Some((spec.cpus * 1e9) as i64),
                pids_limit: Some(spec.pids),
                network_mode: spec.network.clone(),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                init: Some(spec.init),
                readonly_rootfs: Some(spec.read_only_root),
                // A capped log: an agent printing without end fills no disk.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), super::LOG_MAX_SIZE.to_string()),
                        ("max-file".to_string(), super::LOG_MAX_FILES.to_string()),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.rt.block_on(self.docker.create_container(Some(opts), body)) {
            Ok(r) => Ok(r.id),
            Err(e) if is_status(&e, 409) => Err(CreateError::NameInUse),
            Err(e) => Err(CreateError::Other(match classify(&format!("creating container {}", spec.name), e) {
                Error::Runtime { msg, hint: None } if msg.contains("No such image") => Error::Runtime {
                    msg: format!("image {} does not exist on this Docker engine", spec.image),
                    hint: Some("build it locally (`bash dev.sh image` builds gt-agent:latest) or fix the rig's --image; gt never pulls".into()),
                },
                other => other,
            })),
        }
    }

    fn start(&self, id: &str) -> Result<()> {
        self.rt
            .block_on(self.docker.start_container(id, None))
            .map_err(|e| classify(&format!("starting container {id}"), e))
    }

    fn list(&self, town_id: &str) -> Result<Vec<Observed>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{}={town_id}", super::LABEL_TOWN)],
        );
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .rt
            .block_on(self.docker.list_containers(Some(opts)))
            .map_err(|e| classify("listing containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| {
                use bollard::models::ContainerSummaryStateEnum as S;
                Observed {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    labels: c
                        .labels
                        .unwrap_or_default()
                        .into_iter()
                        .collect::<BTreeMap<_, _>>(),
                    state: match c.state {
                        Some(S::CREATED) => RunState::Created,
                        Some(S::RUNNING) | Some(S::RESTARTING) | Some(S::PAUSED) => {
                            RunState::Running
                        }
                        Some(S::EXITED) | Some(S::DEAD) => RunState::Exited,
                        _ => RunState::Other,
                    },
                    exit_code: None,
                    oom: false,
                    finished_at: None,
                    error: None,
                }
            })
            .collect())
    }

    fn inspect(&self, id: &str) -> Result<Option<Observed>> {
        let c = match self.rt.block_on(self.docker.inspect_container(id, None)) {
            Ok(c) => c,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(classify(&format!("inspecting container {id}"), e)),
        };
        use bollard::models::ContainerStateStatusEnum as S;
        let st = c.state.unwrap_or_default();
        Ok(Some(Observed {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            labels: c
                .config
                .and_then(|cfg| cfg.labels)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            state: match st.status {
                Some(S::CREATED) => RunState::Created,
                Some(S::RUNNING) | Some(S::RESTARTING) | Some(S::PAUSED) => RunState::Running,
                Some(S::EXITED) | Some(S::DEAD) => RunState::Exited,
                _ => RunState::Other,
            },
            exit_code: st.exit_code,
            oom: st.oom_killed.unwrap_or(false),
            // Docker says "0001-01-01T00:00:00Z" for a container that never finished.
            finished_at: st
                .finished_at
                .as_deref()
                .and_then(crate::util::parse_utc_ms)
                .filter(|&t| t > 0),
            error: st.error.filter(|e| !e.is_empty()),
        }))
    }

    fn remove(&self, id: &str, grace: Duration) -> Result<()> {
        self.stop(id, grace)?;
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        match self
            .rt
            .block_on(self.docker.remove_container(id, Some(opts)))
        {
            Ok(()) => Ok(()),
            // Absent already, or a removal already in progress: the goal is reached.
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(classify(&format!("removing container {id}"), e)),
        }
    }

    fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let stop = StopContainerOptionsBuilder::default()
            .t(grace.as_secs() as i32)
            .build();
        match self.rt.block_on(self.docker.stop_container(id, Some(stop))) {
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 404) || is_status(&e, 304) => Ok(()),
            Err(e) => Err(classify(&format!("stopping container {id}"), e)),
        }
    }

    fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(self.image_size(image)?.is_some())
    }

    fn last_output_at(&self, id: &str) -> Result<Option<i64>> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail("1")
            .build();
        let mut text = String::new();
        self.stream_logs(&self.docker, id, opts, |c| {
            text += c;
            Ok(())
        })?;
        Ok(text
            .lines()
            .filter_map(|l| crate::util::parse_utc_ms(l.split_whitespace().next()?))
            .max())
    }

    fn follow_logs(
        &self,
        id: &str,
        tail: usize,
        each: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        DockerRuntime::follow_logs(self, id, tail, each)
    }

    fn logs(&self, id: &str, tail: usize) -> Result<String> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&super::tail_param(tail))
            .build();
        let mut out = String::new();
        self.stream_logs(&self.docker, id, opts, |c| {
            out += c;
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_colons_and_commas_stays_one_bind_mount() {
        let odd = "/home/me/my town:v2,old/rigs/api/polecats/nux";
        let m = mounts(
            &[super::super::Bind {
                source: odd.into(),
                target: odd.into(),
                read_only: true,
            }],
            &[],
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].typ, Some(MountType::BIND));
        assert_eq!(m[0].source.as_deref(), Some(odd));
        assert_eq!(m[0].target.as_deref(), Some(odd));
        assert_eq!(m[0].read_only, Some(true));
    }
}
