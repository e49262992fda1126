//! The Docker Swarm runtime: one service per dispatch (a replicated job of one task,
//! restart condition `none`) through the manager at `DOCKER_HOST`, observed through ONE
//! task-list call. This slice bind-mounts the town's paths like the Docker runtime: every
//! node that may run an agent must see the town directory at the same path.

use super::docker::{DockerRuntime, classify, is_status, mounts};
use super::{ContainerSpec, CreateError, LABEL_TOWN, Observed, RunState, Runtime};
use crate::error::{Error, Result};
use bollard::models::{
    Limit, ResourceObject, Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicatedJob,
    Task, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecPrivileges, TaskSpecLogDriver,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListServicesOptionsBuilder, ListTasksOptionsBuilder, LogsOptions, LogsOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// On a Swarm secret: the name of the service it was made for.
const LABEL_SERVICE: &str = "gt.service";

/// SIGTERM, then SIGKILL this much later: the engine applies the grace written in the
/// service at its creation (changing it later would re-run the job), so `remove`'s own
/// grace cannot shorten it.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long `remove` waits, past [`STOP_GRACE`], for a task to be reported stopped (a
/// task on a node that is gone never is: the service is deleted all the same).
const STOP_SLACK: Duration = Duration::from_secs(20);

/// Agents as Swarm services, through a manager's engine.
pub struct SwarmRuntime {
    engine: DockerRuntime,
}

impl SwarmRuntime {
    /// Connect to the manager at `DOCKER_HOST` (as [`DockerRuntime::connect`]).
    pub fn connect() -> Result<SwarmRuntime> {
        Ok(SwarmRuntime {
            engine: DockerRuntime::connect()?,
        })
    }

    /// [`connect`](Self::connect) with `timeout` for every call.
    pub fn connect_within(timeout: Duration) -> Result<SwarmRuntime> {
        Ok(SwarmRuntime {
            engine: DockerRuntime::connect_within(timeout)?,
        })
    }

    fn tasks(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<Task>> {
        let opts = ListTasksOptionsBuilder::default().filters(filters).build();
        self.engine
            .rt
            .block_on(self.engine.docker.list_tasks(Some(opts)))
            .map_err(|e| swarm_error("listing swarm tasks", e))
    }

    /// The nodes the manager no longer counts on (down, disconnected, unknown): their
    /// tasks are dead for gt, whatever state they last reported.
    fn lost_nodes(&self) -> Result<std::collections::HashSet<String>> {
        use bollard::models::NodeState;
        let nodes = self
            .engine
            .rt
            .block_on(self.engine.docker.list_nodes(None))
            .map_err(|e| swarm_error("listing swarm nodes", e))?;
        Ok(nodes
            .into_iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|st| st.state)
                    .is_none_or(|st| st != NodeState::READY)
            })
            .filter_map(|n| n.id)
            .collect())
    }

    /// The Swarm secrets of a service about to be made from `spec`, one per entry of
    /// its secret environment: (id, name). Labelled with the service's name (and gt's
    /// labels), so `remove` finds them; older generations' leftovers of the same service
    /// (a crash between removing a service and its secrets) go first.
    fn make_secrets(&self, spec: &ContainerSpec) -> Result<Vec<(String, String)>> {
        if spec.secret_env.is_empty() {
            return Ok(Vec::new());
        }
        use base64::Engine as _;
        let service = service_name(&spec.name);
        let generation = spec
            .labels
            .get(super::LABEL_GENERATION)
            .cloned()
            .unwrap_or_default();
        self.remove_secrets(&service, Some(&generation))?;
        let mut made = Vec::new();
        for (key, value) in &spec.secret_env {
            let mut labels: HashMap<String, String> = spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.insert(LABEL_SERVICE.into(), service.clone());
            // Unique per attempt: a retried create must not find its own name taken.
            let name = format!(
                "gt-{}-{}",
                crate::util::random_hex(10),
                key.to_ascii_lowercase().replace('_', "-")
            );
            let body = bollard::models::SecretSpec {
                name: Some(name.clone()),
                labels: Some(labels),
                data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
                ..Default::default()
            };
            match self
                .engine
                .rt
                .block_on(self.engine.docker.create_secret(body))
            {
                Ok(r) => made.push((r.id, name)),
                Err(e) => {
                    for (id, _) in &made {
                        let _ = self
                            .engine
                            .rt
                            .block_on(self.engine.docker.delete_secret(id));
                    }
                    return Err(swarm_error(&format!("creating a secret for {service}"), e));
                }
            }
        }
        Ok(made)
    }

    /// Delete the Swarm secrets made for `service` (all, or those of generations other
    /// than `keep`). One in use by a live service stays (Swarm refuses): it goes with it.
    fn remove_secrets(&self, service: &str, keep: Option<&str>) -> Result<()> {
        let opts = bollard::query_parameters::ListSecretsOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{LABEL_SERVICE}={service}")],
            )])),
        };
        let secrets = self
            .engine
            .rt
            .block_on(self.engine.docker.list_secrets(Some(opts)))
            .map_err(|e| swarm_error("listing secrets", e))?;
        for s in secrets {
            let generation = s
                .spec
                .as_ref()
                .and_then(|sp| sp.labels.as_ref())
                .and_then(|l| l.get(super::LABEL_GENERATION))
                .map(String::as_str);
            if keep.is_some() && generation == keep {
                continue;
            }
            if let Some(id) = s.id {
                match self
                    .engine
                    .rt
                    .block_on(self.engine.docker.delete_secret(&id))
                {
                    Ok(()) => {}
                    Err(e) if is_status(&e, 404) || is_status(&e, 400) || is_status(&e, 409) => {}
                    Err(e) => return Err(swarm_error(&format!("removing secret {id}"), e)),
                }
            }
        }
        Ok(())
    }

    fn tasks_of(&self, service: &str) -> Result<Option<Vec<Task>>> {
        let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
        let opts = ListTasksOptionsBuilder::default().filters(&filters).build();
        match self
            .engine
            .rt
            .block_on(self.engine.docker.list_tasks(Some(opts)))
        {
            Ok(t) => Ok(Some(t)),
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(swarm_error(&format!("listing the tasks of {service}"), e)),
        }
    }

    fn stream_logs(
        &self,
        docker: &bollard::Docker,
        id: &str,
        opts: LogsOptions,
        each: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let service = service_name(id);
        self.engine.rt.block_on(async {
            let mut stream = docker.service_logs(&service, Some(opts));
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => each(&c.to_string())?,
                    Err(e) if is_status(&e, 404) => {
                        return Err(Error::not_found(format!("service {service}"), None));
                    }
                    Err(e) => {
                        return Err(swarm_error(&format!("reading logs of {service}"), e));
                    }
                }
            }
            Ok(())
        })
    }
}

/// A Swarm service name is a DNS label: at most 63 characters, letters and digits with
/// `-` or `_` only between them. gt's container names can be longer (long rig and
/// polecat names) or end in `-`/`_`: those become a prefix and a hash of the whole name,
/// the same every time, so `inspect` and `remove` by name find what `create` made.
/// Service ids (25 letters and digits) pass unchanged.
pub fn service_name(name: &str) -> String {
    let valid = |s: &str| {
        s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !s.contains("--")
            && !s.contains("__")
            && !s.contains("-_")
            && !s.contains("_-")
    };
    if valid(name) {
        return name.to_string();
    }
    // FNV-1a, 64 bits: stable across versions and platforms (std's hasher is not).
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut prefix: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(46)
        .collect();
    while prefix.contains("--") {
        prefix = prefix.replace("--", "-");
    }
    let prefix = prefix.trim_matches('-');
    if prefix.is_empty() {
        format!("gt-{hash:016x}")
    } else {
        format!("{prefix}-{hash:016x}")
    }
}

/// The service for `spec`: every hardening Swarm can express, and the limits as both
/// limits and (memory) reservations, so the scheduler places no agent where its memory
/// is not free. CPU is not reserved: it is shared, never a reason to be killed.
fn service_spec(spec: &ContainerSpec, secrets: &[(String, String)]) -> ServiceSpec {
    let name = service_name(&spec.name);
    let labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ServiceSpec {
        name: Some(name.clone()),
        labels: Some(labels.clone()),
        // A job of one task that runs once: an agent that ends (or is killed) is not
        // restarted by Swarm; patrol decides, with a new generation.
        mode: Some(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: Some(1),
                total_completions: Some(1),
            }),
            ..Default::default()
        }),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                labels: Some(labels),
                // The image's entrypoint stays; the command replaces its CMD, as for a
                // container.
                args: Some(spec.cmd.clone()),
                // The service's name, not a random one, in what the agent prints.
                hostname: Some(name),
                env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                dir: Some(spec.workdir.clone()),
                user: Some(spec.user.clone()),
                read_only: Some(spec.read_only_root),
                mounts: Some(mounts(&spec.binds, &spec.tmpfs)),
                // The secret environment as files readable by the agent's user only.
                secrets: (!secrets.is_empty()).then(|| {
                    let (uid, gid) = spec.user.split_once(':').unwrap_or((&spec.user, "0"));
                    spec.secret_env
                        .iter()
                        .zip(secrets)
                        .map(|((key, _), (id, name))| {
                            bollard::models::TaskSpecContainerSpecSecrets {
                                secret_id: Some(id.clone()),
                                secret_name: Some(name.clone()),
                                file: Some(bollard::models::TaskSpecContainerSpecFile {
                                    name: super::secret_env_file(key)
                                        .file_name()
                                        .map(|n| n.to_string_lossy().into_owned()),
                                    uid: Some(uid.to_string()),
                                    gid: Some(gid.to_string()),
                                    mode: Some(0o400),
                                }),
                            }
                        })
                        .collect()
                }),
                init: Some(spec.init),
                capability_drop: Some(vec!["ALL".into()]),
                privileges: Some(TaskSpecContainerSpecPrivileges {
                    no_new_privileges: Some(true),
                    ..Default::default()
                }),
                stop_grace_period: Some(STOP_GRACE.as_nanos() as i64),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: Some((spec.cpus * 1e9) as i64),
                    memory_bytes: Some(spec.memory),
                    pids: Some(spec.pids),
                }),
                reservations: Some(ResourceObject {
                    memory_bytes: Some(spec.memory),
                    ..Default::default()
                }),
                // No swap beyond the memory limit (engines before API 1.52 ignore it).
                swap_bytes: Some(0),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                max_attempts: Some(0),
                ..Default::default()
            }),
            // Where the rig's agents may run; the swarm's own scheduling otherwise.
            placement: (!spec.placement.is_empty()).then(|| bollard::models::TaskSpecPlacement {
                constraints: Some(spec.placement.clone()),
                ..Default::default()
            }),
            networks: spec.network.as_ref().map(|n| {
                vec![bollard::models::NetworkAttachmentConfig {
                    target: Some(n.clone()),
                    ..Default::default()
                }]
            }),
            // A capped log, as for containers.
            log_driver: Some(TaskSpecLogDriver {
                name: Some("json-file".into()),
                options: Some(HashMap::from([
                    ("max-size".to_string(), super::LOG_MAX_SIZE.to_string()),
                    ("max-file".to_string(), super::LOG_MAX_FILES.to_string()),
                ])),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether a task has ended: it never runs again.
fn ended(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::REMOVE
            | TaskState::ORPHANED
    )
}

/// A task as gt sees a container. Wanted stopped (desired `shutdown`, as a task on a
/// node that is down shows while it still says `running`) is not running; on its way
/// (pending, assigned, preparing, starting) is, as the manager will run it.
fn run_state(state: Option<TaskState>, desired: Option<TaskState>) -> RunState {
    let Some(state) = state else {
        return RunState::Other;
    };
    let stopping = matches!(
        desired,
        Some(TaskState::SHUTDOWN | TaskState::REMOVE | TaskState::ORPHANED)
    );
    if ended(state) || stopping {
        RunState::Exited
    } else {
        RunState::Running
    }
}

fn observe(t: Task) -> Observed {
    let spec = t.spec.and_then(|s| s.container_spec).unwrap_or_default();
    let status = t.status.unwrap_or_default();
    let state = run_state(status.state, t.desired_state);
    let exited = state == RunState::Exited;
    let exit_code = status
        .container_status
        .and_then(|c| c.exit_code)
        .filter(|_| exited);
    Observed {
        id: t.service_id.unwrap_or_default(),
        name: spec.hostname.unwrap_or_default(),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        state,
        exit_code,
        // What the manager says of a task that never ran ("No such image", "invalid
        // mount config…" on its node); an exit code says enough of one that did. And of
        // one still waiting to be placed: "no suitable node (insufficient resources on
        // 3 nodes)" — a dispatch that may wait for ever says so at once.
        error: status.err.filter(|e| {
            !e.is_empty()
                && if exited {
                    exit_code.is_none()
                } else {
                    matches!(
                        status.state,
                        Some(TaskState::NEW | TaskState::PENDING | TaskState::ALLOCATED)
                    )
                }
        }),
        // The manager never learns of an OOM kill; `gt agent run` reports it (its ending).
        oom: false,
        finished_at: status
            .timestamp
            .as_deref()
            .and_then(crate::util::parse_utc_ms)
            .filter(|_| exited),
    }
}

/// A task as gt sees a container, and whether its node is one the manager has lost.
fn observe_on(t: Task, lost: &std::collections::HashSet<String>) -> (Observed, bool) {
    let gone = t.node_id.as_ref().is_some_and(|n| lost.contains(n));
    (observe(t), gone)
}

/// A task on a lost node is dead for gt (a job's task keeps saying `running` there, its
/// desired state `complete`, however long the node is down): patrol dispatches again.
fn on_node((o, gone): (Observed, bool)) -> Observed {
    if !gone || o.state != RunState::Running {
        return o;
    }
    Observed {
        state: RunState::Exited,
        exit_code: None,
        error: Some("its swarm node is down".into()),
        ..o
    }
}

/// A service whose task the manager has not made yet: it is on its way to run (a job
/// always gets its task, and one that has run keeps it in the task list), so it counts
/// as running, as a container just started does.
fn scheduled(svc: Service) -> Observed {
    let spec = svc.spec.unwrap_or_default();
    Observed {
        id: svc.id.unwrap_or_default(),
        name: spec.name.unwrap_or_default(),
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        state: RunState::Running,
        exit_code: None,
        oom: false,
        finished_at: None,
        error: None,
    }
}

/// An engine that is not a swarm manager answers 503: say what to do.
fn swarm_error(what: &str, e: bollard::errors::Error) -> Error {
    match classify(what, e) {
        Error::Runtime { msg, hint: None }
            if msg.contains("swarm manager") || msg.contains("HTTP 503") =>
        {
            Error::Runtime {
                msg,
                hint: Some(
                    "point DOCKER_HOST at a swarm manager (`docker swarm init` makes an engine one), or set `[runtime] kind = \"docker\"` in gt.toml".into(),
                ),
            }
        }
        other => other,
    }
}

impl Runtime for SwarmRuntime {
    fn create(&self, spec: &ContainerSpec) -> std::result::Result<String, CreateError> {
        if spec.network.as_deref() == Some("none") {
            return Err(CreateError::Other(Error::Runtime {
                msg: format!(
                    "{}: a Swarm service cannot run without a network (`--network none`)",
                    spec.name
                ),
                hint: Some("give the rig the default network or an overlay network of the swarm (`gt rig set RIG --network default`)".into()),
            }));
        }
        // Swarm accepts a service whose image no node has and rejects its task later:
        // the manager's engine is asked first, as `create` does for a container.
        if !self.image_exists(&spec.image).map_err(CreateError::Other)? {
            return Err(CreateError::Other(Error::Runtime {
                msg: format!("image {} does not exist on the swarm manager's engine", spec.image),
                hint: Some("build it locally (`bash dev.sh image` builds gt-agent:latest) and load it on every node, or fix the rig's --image; gt never pulls".into()),
            }));
        }
        let secrets = self.make_secrets(spec).map_err(CreateError::Other)?;
        let body = service_spec(spec, &secrets);
        let made = match self
            .engine
            .rt
            .block_on(self.engine.docker.create_service(body, None))
        {
            Ok(r) => r.id.ok_or_else(|| {
                CreateError::Other(Error::Runtime {
                    msg: format!("the swarm created service {} without an id", spec.name),
                    hint: None,
                })
            }),
            Err(e) if is_status(&e, 409) => Err(CreateError::NameInUse),
            Err(e) => Err(CreateError::Other(swarm_error(
                &format!("creating service {}", service_name(&spec.name)),
                e,
            ))),
        };
        if made.is_err() {
            // Not used by any service: gone now (an adopted service has its own).
            for (id, _) in &secrets {
                let _ = self
                    .engine
                    .rt
                    .block_on(self.engine.docker.delete_secret(id));
            }
        }
        made
    }

    /// Nothing to do: Swarm schedules a service when it is created (a job has no
    /// "created, not started"; a service scaled from 0 would be one the task list cannot
    /// see). `starts_on_create` tells sling, and `gt agent run` refuses to work for a
    /// generation its assignment no longer names, so an early start is harmless.
    fn start(&self, _id: &str) -> Result<()> {
        Ok(())
    }

    fn starts_on_create(&self) -> bool {
        true
    }

    /// Three calls, whatever the number of agents: the town's services, their tasks, the nodes.
    /// The services say which tasks still count: an ended task outlives its deleted
    /// service in the task list (until the manager reaps it), and would otherwise come
    /// back as an orphan on every pass.
    fn list(&self, town_id: &str) -> Result<Vec<Observed>> {
        // Both label filters match the service's labels, which carry the town's.
        let filters =
            HashMap::from([("label".to_string(), vec![format!("{LABEL_TOWN}={town_id}")])]);
        let opts = ListServicesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let services = self
            .engine
            .rt
            .block_on(self.engine.docker.list_services(Some(opts)))
            .map_err(|e| swarm_error("listing swarm services", e))?;
        let tasks = self.tasks(&filters)?;
        let lost = self.lost_nodes()?;
        let mut untasked: BTreeMap<String, Service> = services
            .into_iter()
            .filter_map(|s| Some((s.id.clone()?, s)))
            .collect();
        let names: HashMap<String, String> = untasked
            .iter()
            .map(|(id, s)| {
                let name = s.spec.as_ref().and_then(|sp| sp.name.clone());
                (id.clone(), name.unwrap_or_default())
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            let Some(sid) = t.service_id.clone() else {
                continue;
            };
            let Some(name) = names.get(&sid) else {
                continue; // its service is deleted: no agent of gt's any more
            };
            untasked.remove(&sid);
            out.push(Observed {
                name: name.clone(),
                ..on_node(observe_on(t, &lost))
            });
        }
        // Created a moment ago, its task not made yet.
        out.extend(untasked.into_values().map(scheduled));
        Ok(out)
    }

    fn inspect(&self, id: &str) -> Result<Option<Observed>> {
        let name = service_name(id);
        let svc = match self
            .engine
            .rt
            .block_on(self.engine.docker.inspect_service(&name, None))
        {
            Ok(s) => s,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(swarm_error(&format!("inspecting service {name}"), e)),
        };
        let sid = svc.id.clone().unwrap_or_default();
        let Some(tasks) = self.tasks_of(&sid)? else {
            return Ok(None);
        };
        let lost = self.lost_nodes()?;
        // The newest task (a job of one has one; a retried one would have more).
        let newest = tasks.into_iter().max_by(|a, b| {
            let key = |t: &Task| {
                (
                    t.created_at.clone().unwrap_or_default(),
                    t.version.as_ref().and_then(|v| v.index).unwrap_or(0),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(Some(match newest {
            Some(t) => Observed {
                name: svc.spec.and_then(|s| s.name).unwrap_or_default(),
                ..on_node(observe_on(t, &lost))
            },
            None => scheduled(svc),
        }))
    }

    /// A service cannot be stopped and kept (its task would be rescheduled, or, as a
    /// job, its logs go with the service): `remove` stops it.
    fn stop(&self, _id: &str, _grace: Duration) -> Result<()> {
        Ok(())
    }

    /// Delete the service, then wait (within the service's stop grace and some slack)
    /// until its task is reported stopped, so that what the agent could write is
    /// settled when this returns, as after `docker stop`. `_grace` cannot be applied:
    /// see [`STOP_GRACE`].
    fn remove(&self, id: &str, _grace: Duration) -> Result<()> {
        let name = service_name(id);
        let Some(tasks) = self.tasks_of(&name)? else {
            return Ok(()); // absent already
        };
        // Its secrets are found by the service's name (the id a caller may pass is not
        // what they are labelled with).
        let svc_name = match self
            .engine
            .rt
            .block_on(self.engine.docker.inspect_service(&name, None))
        {
            Ok(s) => s.spec.and_then(|s| s.name).unwrap_or(name.clone()),
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(swarm_error(&format!("inspecting service {name}"), e)),
        };
        match self
            .engine
            .rt
            .block_on(self.engine.docker.delete_service(&name))
        {
            Ok(()) => {}
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(swarm_error(&format!("removing service {name}"), e)),
        }
        self.remove_secrets(&svc_name, None)?;
        let mut live: Vec<String> = tasks
            .into_iter()
            .filter(|t| !t.status.as_ref().and_then(|s| s.state).is_some_and(ended))
            .filter_map(|t| t.id)
            .collect();
        let deadline = Instant::now() + STOP_GRACE + STOP_SLACK;
        while !live.is_empty() {
            let mut still = Vec::new();
            for t in live {
                match self.engine.rt.block_on(self.engine.docker.inspect_task(&t)) {
                    Ok(task)
                        if !task
                            .status
                            .as_ref()
                            .and_then(|s| s.state)
                            .is_some_and(ended) =>
                    {
                        still.push(t)
                    }
                    Ok(_) => {}
                    Err(e) if is_status(&e, 404) => {}
                    Err(e) => return Err(swarm_error(&format!("inspecting task {t}"), e)),
                }
            }
            live = still;
            if !live.is_empty() {
                if Instant::now() > deadline {
                    tracing::warn!(
                        "service {name} is removed, but its task {} was not reported stopped within {}s (its node may be down)",
                        live.join(", "),
                        (STOP_GRACE + STOP_SLACK).as_secs()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn logs(&self, id: &str, tail: usize) -> Result<String> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&super::tail_param(tail))
            .build();
        let mut out = String::new();
        self.stream_logs(&self.engine.docker, id, opts, &mut |c| {
            out += c;
            Ok(())
        })?;
        Ok(out)
    }

    fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(self.engine.image_size(image)?.is_some())
    }

    fn last_output_at(&self, id: &str) -> Result<Option<i64>> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .tail("1")
            .build();
        let mut text = String::new();
        self.stream_logs(&self.engine.docker, id, opts, &mut |c| {
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
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .tail(&tail.to_string())
            .build();
        // No call deadline: following is meant to last.
        let docker = self
            .engine
            .docker
            .clone()
            .with_timeout(Duration::from_secs(u32::MAX as u64));
        self.stream_logs(&docker, id, opts, each)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels_and_stable() {
        assert_eq!(service_name("gt-abc123-api-nux"), "gt-abc123-api-nux");
        assert_eq!(
            service_name("ij7pnm5s1l8vhj3vb0wqjrxv2"),
            "ij7pnm5s1l8vhj3vb0wqjrxv2"
        );
        let long = format!("gt-abc123-{}-{}", "r".repeat(40), "p".repeat(40));
        let s = service_name(&long);
        assert!(s.len() <= 63, "{s}");
        assert_eq!(s, service_name(&long));
        assert_ne!(s, service_name(&(long.clone() + "x")));
        let odd = service_name("gt-abc-api-nux_");
        assert!(odd.ends_with(|c: char| c.is_ascii_alphanumeric()), "{odd}");
        assert!(!odd.contains("--"), "{odd}");
    }

    #[test]
    fn a_service_keeps_every_hardening_swarm_can_express() {
        let spec = ContainerSpec {
            name: "gt-t1-api-nux".into(),
            image: "gt-agent:latest".into(),
            cmd: vec!["gt".into(), "agent".into(), "run".into()],
            env: vec![("GT_AGENT".into(), "api/nux".into())],
            labels: BTreeMap::from([(LABEL_TOWN.to_string(), "t1".to_string())]),
            binds: vec![super::super::Bind {
                source: "/town/rigs/api/polecats/nux".into(),
                target: "/town/rigs/api/polecats/nux".into(),
                read_only: false,
            }],
            tmpfs: vec![super::super::Tmpfs {
                target: "/tmp".into(),
                options: "size=64m,mode=1777".into(),
            }],
            read_only_root: true,
            workdir: "/town/rigs/api/polecats/nux".into(),
            user: "10001:10001".into(),
            memory: 256 << 20,
            cpus: 1.5,
            pids: 512,
            network: None,
            placement: vec!["node.labels.gpu==true".into()],
            secret_env: vec![("GT_TOKEN".into(), "tok-123".into())],
            init: true,
        };
        let s = service_spec(&spec, &[("sid".into(), "gt-x-gt-token".into())]);
        assert_eq!(s.name.as_deref(), Some("gt-t1-api-nux"));
        assert_eq!(s.labels.as_ref().unwrap()[LABEL_TOWN], "t1");
        let job = s.mode.unwrap().replicated_job.unwrap();
        assert_eq!(
            (job.max_concurrent, job.total_completions),
            (Some(1), Some(1))
        );
        let t = s.task_template.unwrap();
        assert_eq!(
            t.placement.as_ref().and_then(|p| p.constraints.clone()),
            Some(vec!["node.labels.gpu==true".to_string()])
        );
        assert_eq!(
            t.restart_policy.unwrap().condition,
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let c = t.container_spec.unwrap();
        assert!(
            !serde_json::to_string(&c).unwrap().contains("tok-123"),
            "the value is not in the spec"
        );
        assert_eq!(c.labels.as_ref().unwrap()[LABEL_TOWN], "t1");
        assert_eq!(c.args.as_deref(), Some(&spec.cmd[..]));
        assert_eq!(c.command, None, "the image's entrypoint stays");
        assert_eq!(c.env.unwrap(), vec!["GT_AGENT=api/nux".to_string()]);
        // The secret environment is a Swarm secret, a file only the agent reads.
        let sec = &c.secrets.as_ref().unwrap()[0];
        assert_eq!(sec.secret_id.as_deref(), Some("sid"));
        let f = sec.file.as_ref().unwrap();
        assert_eq!(f.name.as_deref(), Some("gt_token"));
        assert_eq!((f.uid.as_deref(), f.mode), (Some("10001"), Some(0o400)));
        assert_eq!(c.user.as_deref(), Some("10001:10001"));
        assert_eq!(c.dir.as_deref(), Some(spec.workdir.as_str()));
        assert_eq!((c.read_only, c.init), (Some(true), Some(true)));
        assert_eq!(c.capability_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(c.privileges.unwrap().no_new_privileges, Some(true));
        assert_eq!(c.mounts.unwrap().len(), 2);
        let r = t.resources.unwrap();
        let l = r.limits.unwrap();
        assert_eq!(
            (l.memory_bytes, l.nano_cpus, l.pids),
            (Some(256 << 20), Some(1_500_000_000), Some(512))
        );
        let reserved = r.reservations.unwrap();
        assert_eq!(
            (reserved.memory_bytes, reserved.nano_cpus),
            (Some(256 << 20), None)
        );
        assert_eq!(r.swap_bytes, Some(0));
        assert_eq!(t.networks, None);
        let log = t.log_driver.unwrap();
        assert_eq!(log.options.unwrap()["max-size"], super::super::LOG_MAX_SIZE);
    }

    #[test]
    fn a_rejected_task_says_why_and_a_failed_one_its_code() {
        use bollard::models::{ContainerStatus, TaskStatus};
        let task = |state, err: &str, code: Option<i64>| Task {
            service_id: Some("svc".into()),
            desired_state: Some(TaskState::SHUTDOWN),
            status: Some(TaskStatus {
                state: Some(state),
                err: Some(err.into()),
                container_status: code.map(|c| ContainerStatus {
                    exit_code: Some(c),
                    ..Default::default()
                }),
                timestamp: Some("2026-01-02T03:04:05.5Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let o = observe(task(
            TaskState::REJECTED,
            "No such image: gt-agent:latest",
            None,
        ));
        assert_eq!(o.state, RunState::Exited);
        assert_eq!(o.error.as_deref(), Some("No such image: gt-agent:latest"));
        assert_eq!(o.exit_code, None);
        let o = observe(task(
            TaskState::FAILED,
            "task: non-zero exit (137)",
            Some(137),
        ));
        assert_eq!((o.exit_code, o.error, o.oom), (Some(137), None, false));
        assert!(o.finished_at.is_some());
    }

    #[test]
    fn a_task_wanted_stopped_is_not_running() {
        use TaskState as S;
        assert_eq!(
            run_state(Some(S::RUNNING), Some(S::RUNNING)),
            RunState::Running
        );
        // A job's task is wanted complete while it runs.
        assert_eq!(
            run_state(Some(S::RUNNING), Some(S::COMPLETE)),
            RunState::Running
        );
        assert_eq!(
            run_state(Some(S::PREPARING), Some(S::COMPLETE)),
            RunState::Running
        );
        // On a node that is down: still "running", wanted shut down.
        assert_eq!(
            run_state(Some(S::RUNNING), Some(S::SHUTDOWN)),
            RunState::Exited
        );
        assert_eq!(
            run_state(Some(S::FAILED), Some(S::SHUTDOWN)),
            RunState::Exited
        );
        assert_eq!(
            run_state(Some(S::COMPLETE), Some(S::COMPLETE)),
            RunState::Exited
        );
        assert_eq!(
            run_state(Some(S::REJECTED), Some(S::SHUTDOWN)),
            RunState::Exited
        );
    }
}
