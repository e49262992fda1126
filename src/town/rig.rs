//! Rigs: add (clone + record settings), list, show, remove.

use super::Town;
use crate::error::{Error, IoContext, Result};
use crate::runtime::{MAX_CPUS, MIN_CPUS, MIN_MEMORY};
use crate::state::{agents, rigs, rigs::Rig};
use crate::util::{format_size, now_ms, parse_size, random_hex, validate_name};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An agent preset: a known coding agent CLI with the image, command, environment and
/// secret it needs. `custom` is whatever the rig's own settings say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Claude,
    Codex,
    Custom,
}

impl Preset {
    pub const NAMES: [&'static str; 3] = ["claude", "codex", "custom"];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Claude => "claude",
            Preset::Codex => "codex",
            Preset::Custom => "custom",
        }
    }

    fn image(self) -> Option<&'static str> {
        match self {
            Preset::Claude => Some("gt-claude:latest"),
            Preset::Codex => Some("gt-codex:latest"),
            Preset::Custom => None,
        }
    }

    fn command(self) -> Option<&'static str> {
        match self {
            Preset::Claude => Some(
                "claude -p \"$(gt prime)\" --output-format stream-json --verbose --dangerously-skip-permissions",
            ),
            Preset::Codex => Some(
                "codex exec --json --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check \"$(gt prime)\"",
            ),
            Preset::Custom => None,
        }
    }

    fn env(self) -> BTreeMap<String, String> {
        match self {
            Preset::Claude => BTreeMap::from([(
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_string(),
                "1".to_string(),
            )]),
            Preset::Codex | Preset::Custom => BTreeMap::new(),
        }
    }

    /// The secret the agent needs; `has` tells which secrets the town has set. Claude
    /// takes an OAuth token instead of an API key when only the token is set.
    fn secrets(self, has: &dyn Fn(&str) -> bool) -> Vec<String> {
        match self {
            Preset::Claude if !has("ANTHROPIC_API_KEY") && has("CLAUDE_CODE_OAUTH_TOKEN") => {
                vec!["CLAUDE_CODE_OAUTH_TOKEN".into()]
            }
            Preset::Claude => vec!["ANTHROPIC_API_KEY".into()],
            Preset::Codex => vec!["OPENAI_API_KEY".into()],
            Preset::Custom => Vec::new(),
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Preset> {
        match s {
            "claude" => Ok(Preset::Claude),
            "codex" => Ok(Preset::Codex),
            "custom" => Ok(Preset::Custom),
            _ => Err(
                Error::usage(format!("--agent {s:?} is not an agent preset"))
                    .with_hint("use claude, codex, or custom (your own --image and --command)"),
            ),
        }
    }
}

/// Settings given to `gt rig add`; None takes the town default from gt.toml.
#[derive(Debug, Default, Clone)]
pub struct RigSpec {
    pub name: String,
    pub source: String,
    pub image: Option<String>,
    pub command: Option<String>,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub remote: Option<String>,
    pub max_polecats: Option<u32>,
    pub pids: Option<u32>,
    pub network: Option<String>,
    /// An agent preset name (`claude`, `codex`, `custom`).
    pub agent: Option<String>,
    /// `KEY=VALUE` entries: the whole non-secret environment (replaces the rig's).
    pub env: Option<Vec<String>>,
    /// Secret names: the whole list (replaces the rig's).
    pub secrets: Option<Vec<String>>,
    /// Landing policy: `review`, `auto` or `off`.
    pub merge: Option<String>,
    /// The gate command; `Some("")` removes the gate.
    pub test_command: Option<String>,
    /// `merge`, `squash` or `rebase`.
    pub merge_style: Option<String>,
    pub gate_secrets: Option<bool>,
    pub digest: Option<bool>,
    /// Swarm placement constraints: the whole list (replaces the rig's).
    pub placement: Option<Vec<String>>,
    /// Whether landed work is fast-forwarded into the rig's local source repository
    /// (only for a local source without a remote; on by default).
    pub land_into_source: Option<bool>,
}

/// A rig's agent settings, validated: what `add` records and `set` changes.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    image: String,
    command: String,
    memory: i64,
    cpus: f64,
    pids: i64,
    network: String,
    max_polecats: i64,
    agent: String,
    env: BTreeMap<String, String>,
    secrets: Vec<String>,
    merge: String,
    test_command: Option<String>,
    merge_style: String,
    gate_secrets: bool,
    digest: bool,
    placement: Vec<String>,
}

/// `KEY=VALUE` entries as an environment; errors name the flag.
fn parse_env(entries: &[String]) -> Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for e in entries {
        let Some((k, v)) = e.split_once('=') else {
            return Err(Error::usage(format!("--env {e:?} is not KEY=VALUE"))
                .with_hint("e.g. --env RUST_LOG=info (secrets go in `gt secret set`, attached with --secret)"));
        };
        let key_ok = !k.is_empty()
            && k.len() <= 64
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok {
            return Err(
                Error::usage(format!("--env: {k:?} is not an environment variable name"))
                    .with_hint("use [A-Za-z_][A-Za-z0-9_]{0,63}"),
            );
        }
        if k.starts_with("GT_") {
            return Err(Error::usage(format!(
                "--env {k}: GT_ variables are gt's own"
            )));
        }
        if v.contains('\0') || v.len() > 32 << 10 {
            return Err(Error::usage(format!(
                "--env {k}: the value holds a NUL byte or is over 32 KiB"
            )));
        }
        env.insert(k.to_string(), v.to_string());
    }
    Ok(env)
}

/// Swarm placement constraints (`node.labels.gpu==true`, `node.hostname!=laptop`,
/// `node.role==worker`, `node.platform.arch==x86_64`, `engine.labels.x==y`), checked the
/// way Swarm reads them, without repeats.
fn parse_placement(given: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in given {
        let parts = c.split_once("==").or_else(|| c.split_once("!="));
        let ok = parts.is_some_and(|(k, v)| {
            let k = k.trim();
            let v = v.trim();
            (k.starts_with("node.") || k.starts_with("engine.labels."))
                && k.len() <= 256
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
                && !v.is_empty()
                && v.len() <= 256
                && !v.contains(['=', '!', '\n', '\0'])
        });
        if !ok {
            return Err(
                Error::usage(format!("--placement {c:?} is not a placement constraint")).with_hint(
                    "use e.g. node.labels.gpu==true, node.hostname!=laptop or node.role==worker",
                ),
            );
        }
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// Secret names, checked, without repeats, in the order given.
fn parse_secrets(names: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        super::secret::validate_name(n)?;
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// An environment's change in words, without its values: `+ADDED -REMOVED ~CHANGED`.
fn env_change(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> String {
    let mut parts = Vec::new();
    for (k, v) in after {
        match before.get(k) {
            None => parts.push(format!("+{k}")),
            Some(old) if old != v => parts.push(format!("~{k}")),
            Some(_) => {}
        }
    }
    for k in before.keys().filter(|k| !after.contains_key(*k)) {
        parts.push(format!("-{k}"));
    }
    parts.join(" ")
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Settings {
    fn of(r: &Rig) -> Settings {
        Settings {
            image: r.image.clone(),
            command: r.command.clone(),
            memory: r.memory,
            cpus: r.cpus,
            pids: r.pids,
            network: r.network.clone(),
            max_polecats: r.max_polecats,
            agent: r.agent.clone(),
            env: r.env.clone(),
            secrets: r.secrets.clone(),
            merge: r.merge.clone(),
            test_command: r.test_command.clone(),
            merge_style: r.merge_style.clone(),
            gate_secrets: r.gate_secrets,
            digest: r.digest,
            placement: r.placement.clone(),
        }
    }

    /// `base` with every setting `spec` gives, each checked; errors name the flag. A
    /// preset (`--agent`) fills image, command, env and secrets, except those given too.
    /// `has_secret` tells which secrets the town has set.
    fn apply(mut self, spec: &RigSpec, has_secret: &dyn Fn(&str) -> bool) -> Result<Settings> {
        if let Some(a) = &spec.agent {
            let preset: Preset = a.parse()?;
            self.agent = preset.as_str().to_string();
            if let Some(image) = preset.image() {
                self.image = image.to_string();
            }
            if let Some(command) = preset.command() {
                self.command = command.to_string();
                self.env = preset.env();
                self.secrets = preset.secrets(has_secret);
            }
        }
        if let Some(e) = &spec.env {
            self.env = parse_env(e)?;
        }
        if let Some(names) = &spec.secrets {
            self.secrets = parse_secrets(names)?;
        }
        if let Some(p) = &spec.placement {
            self.placement = parse_placement(p)?;
        }
        if let Some(m) = &spec.memory {
            self.memory = parse_size(m).ok_or_else(|| {
                Error::usage(format!("--memory {m:?} is not a size"))
                    .with_hint("use e.g. 512m or 4g")
            })?;
            if self.memory < MIN_MEMORY {
                return Err(Error::usage(format!(
                    "--memory {m:?} is below Docker's minimum container memory of 6 MiB"
                ))
                .with_hint("give at least 6m; agents running git want a few hundred (e.g. 512m)"));
            }
        }
        if let Some(c) = spec.cpus {
            if !(MIN_CPUS..=MAX_CPUS).contains(&c) {
                return Err(
                    Error::usage(format!("--cpus {c} is outside {MIN_CPUS}..={MAX_CPUS}"))
                        .with_hint("Docker's minimum is 0.01 CPUs; use e.g. 0.5 or 2"),
                );
            }
            self.cpus = c;
        }
        if let Some(p) = spec.pids {
            if !(16..=1_000_000).contains(&p) {
                return Err(Error::usage(format!("--pids {p} is outside 16..=1000000"))
                    .with_hint("agents run a shell, git and gt: leave room for them"));
            }
            self.pids = p as i64;
        }
        if let Some(network) = &spec.network {
            let ok = !network.is_empty()
                && network.len() <= 64
                && network
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && !network.starts_with(['-', '.']);
            if !ok {
                return Err(
                    Error::usage(format!("--network {network:?} is not a network name"))
                        .with_hint("use default, none, host, or the name of a Docker network"),
                );
            }
            self.network = network.clone();
        }
        if let Some(n) = spec.max_polecats {
            if n == 0 {
                return Err(Error::usage("--max-polecats must be at least 1"));
            }
            self.max_polecats = n as i64;
        }
        if let Some(c) = &spec.command {
            if c.trim().is_empty() {
                return Err(Error::usage("--command is empty").with_hint(
                    "give the agent command, e.g. --command 'my-agent --task \"$(gt prime)\"'",
                ));
            }
            self.command = c.clone();
        }
        if let Some(i) = &spec.image {
            if i.trim().is_empty() {
                return Err(Error::usage("--image is empty"));
            }
            self.image = i.clone();
        }
        if let Some(m) = &spec.merge {
            self.merge = m.parse::<super::mq::Policy>()?.as_str().to_string();
        }
        if let Some(m) = &spec.merge_style {
            self.merge_style = m.parse::<super::mq::Style>()?.as_str().to_string();
        }
        if let Some(t) = &spec.test_command {
            if t.contains('\0') || t.len() > 32 << 10 {
                return Err(Error::usage(
                    "--test-command holds a NUL byte or is over 32 KiB",
                ));
            }
            self.test_command = (!t.trim().is_empty()).then(|| t.clone());
        }
        if let Some(b) = spec.gate_secrets {
            self.gate_secrets = b;
        }
        if let Some(b) = spec.digest {
            self.digest = b;
        }
        Ok(self)
    }
}

pub fn add(town: &mut Town, spec: &RigSpec) -> Result<Rig> {
    // 1. Validate everything before any side effect.
    validate_name("rig", &spec.name)?;
    let d = &town.config.defaults;
    let has_secret = |n: &str| super::secret::exists(town, n);
    let Settings {
        image,
        command,
        memory,
        cpus,
        pids,
        network,
        max_polecats,
        agent,
        env,
        secrets,
        merge,
        test_command,
        merge_style,
        gate_secrets,
        digest,
        placement,
    } = Settings {
        image: d.image.clone(),
        command: d.command.clone(),
        memory: d.memory,
        cpus: d.cpus,
        pids: 512,
        network: "default".into(),
        max_polecats: d.max_polecats as i64,
        agent: Preset::Custom.as_str().into(),
        env: BTreeMap::new(),
        secrets: Vec::new(),
        // A new rig's work waits for a person's approval before it lands.
        merge: super::mq::Policy::Review.as_str().into(),
        test_command: None,
        merge_style: super::mq::Style::Merge.as_str().into(),
        gate_secrets: false,
        digest: false,
        placement: Vec::new(),
    }
    .apply(spec, &has_secret)?;
    if rigs::get(town.db.conn(), &spec.name)
        .map_err(|e| town.db_err(e))?
        .is_some()
    {
        return Err(rig_exists(&spec.name));
    }
    let remote = match &spec.remote {
        Some(r) => Some(check_remote(r)?),
        None if crate::git::is_url(&spec.source) => Some(spec.source.clone()),
        None => None,
    };
    if !crate::git::is_url(&spec.source) && !std::path::Path::new(&spec.source).exists() {
        return Err(Error::not_found(
            format!("source {} (the path does not exist)", spec.source),
            Some(format!(
                "give the path of a git repository (`git -C PATH status` works there), or a URL; {} does not exist",
                spec.source
            )),
        ));
    }
    let source = if crate::git::is_url(&spec.source) {
        spec.source.clone()
    } else {
        std::path::absolute(&spec.source)
            .ctx(|| format!("resolving {}", spec.source))?
            .to_string_lossy()
            .into_owned()
    };

    // 2. Clone into a private temp dir, then claim rigs/<name> with one rename.
    let rigs_dir = town.root.join("rigs");
    std::fs::create_dir_all(&rigs_dir).ctx(|| format!("creating {}", rigs_dir.display()))?;
    let tmp = rigs_dir.join(format!(".adding-{}-{}", spec.name, random_hex(4)));
    let cleanup = |p: &PathBuf| {
        let _ = std::fs::remove_dir_all(p);
    };
    let default_branch = match crate::git::clone(&source, &tmp.join("repo")) {
        Ok(b) => b,
        Err(e) => {
            cleanup(&tmp);
            return Err(e);
        }
    };
    let dir = town.rig_dir(&spec.name);
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        cleanup(&tmp);
        if dir.exists() {
            return Err(rig_exists(&spec.name).with_hint(format!(
                "{} already exists on disk; move it aside or choose another name",
                dir.display()
            )));
        }
        return Err(Error::io(format!("creating {}", dir.display()), e));
    }

    // 3. Record it; on a lost race the directory goes away again.
    let rig = Rig {
        name: spec.name.clone(),
        source,
        remote,
        default_branch,
        image,
        command,
        memory,
        cpus,
        pids,
        network,
        max_polecats,
        created_at: now_ms(),
        version: 1,
        agent,
        env,
        secrets,
        merge,
        test_command,
        merge_style,
        gate_secrets,
        digest,
        placement,
    };
    let recorded = town.db.write(|tx| {
        rigs::insert(tx, &rig).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => rig_exists(&rig.name),
            _ => tx.err(e),
        })?;
        // A name used by a removed rig starts from the default again.
        super::mq::source::set_opt_tx(tx, &rig.name, spec.land_into_source.unwrap_or(true))?;
        tx.event(
            "rig.added",
            &rig.name,
            serde_json::to_value(&rig).unwrap_or_default(),
        )
    });
    if let Err(e) = recorded {
        cleanup(&dir);
        return Err(e);
    }
    Ok(rig)
}

/// A remote as given to --remote: a URL or a path, never empty (git would take an empty
/// remote for "no remote" in one place and fail in another).
fn check_remote(r: &str) -> Result<String> {
    if r.trim().is_empty() {
        return Err(Error::usage("--remote is empty")
            .with_hint("give a URL or a path to a bare repository, or leave --remote out"));
    }
    if r.starts_with('-') {
        return Err(Error::usage(format!("--remote {r:?} starts with `-`"))
            .with_hint("git would read it as an option; give a URL or a path"));
    }
    Ok(r.to_string())
}

fn rig_exists(name: &str) -> Error {
    Error::conflict(
        format!("rig {name} already exists"),
        Some(format!(
            "see it with `gt rig show {name}`, or choose another name"
        )),
    )
}

/// What `gt rig set` changed: the rig as it is now, and each change in words.
#[derive(Debug, serde::Serialize)]
pub struct Changed {
    pub rig: Rig,
    pub changes: Vec<String>,
}

/// Change a rig's agent settings (and remote). They apply from the next dispatch on;
/// running agents keep the container they have. `expect_version` makes it a
/// compare-and-swap against the version the caller read.
pub fn set(
    town: &mut Town,
    name: &str,
    spec: &RigSpec,
    expect_version: Option<i64>,
) -> Result<Changed> {
    let given_remote = spec.remote.as_deref().map(check_remote).transpose()?;
    let current = get(town, name)?;
    let before = Settings::of(&current);
    let has_secret = |n: &str| super::secret::exists(town, n);
    let after = before.clone().apply(spec, &has_secret)?;
    let remote = given_remote.or_else(|| current.remote.clone());
    let mut changes = Vec::new();
    let mut note = |what: &str, from: String, to: String| {
        if from != to {
            // Scripts change by their lines, never printed whole twice.
            changes.push(match what {
                "command" | "test command" => text_change(what, &from, &to),
                _ => format!("{what} {from} → {to}"),
            });
        }
    };
    note("agent", before.agent.clone(), after.agent.clone());
    note("image", before.image.clone(), after.image.clone());
    note("command", before.command.clone(), after.command.clone());
    note(
        "memory",
        format_size(before.memory),
        format_size(after.memory),
    );
    note("cpus", before.cpus.to_string(), after.cpus.to_string());
    note("pids", before.pids.to_string(), after.pids.to_string());
    note("network", before.network.clone(), after.network.clone());
    note(
        "max polecats",
        before.max_polecats.to_string(),
        after.max_polecats.to_string(),
    );
    note(
        "remote",
        current.remote.clone().unwrap_or_else(|| "none".into()),
        remote.clone().unwrap_or_else(|| "none".into()),
    );
    note(
        "secrets",
        list_or_none(&before.secrets),
        list_or_none(&after.secrets),
    );
    note("merge", before.merge.clone(), after.merge.clone());
    note(
        "test command",
        before.test_command.clone().unwrap_or_else(|| "none".into()),
        after.test_command.clone().unwrap_or_else(|| "none".into()),
    );
    note(
        "merge style",
        before.merge_style.clone(),
        after.merge_style.clone(),
    );
    note(
        "gate secrets",
        on_off(before.gate_secrets),
        on_off(after.gate_secrets),
    );
    note("digest", on_off(before.digest), on_off(after.digest));
    note(
        "placement",
        list_or_none(&before.placement),
        list_or_none(&after.placement),
    );
    // Names only: a value given by mistake as --env stays out of the log.
    if before.env != after.env {
        changes.push(format!("env {}", env_change(&before.env, &after.env)));
    }
    let was_delivering = !super::mq::source::opted_out(town, name)?;
    if let Some(on) = spec.land_into_source
        && on != was_delivering
    {
        changes.push(format!(
            "land into source {} → {}",
            on_off(was_delivering),
            on_off(on)
        ));
    }
    if spec_is_empty(spec) {
        return Err(Error::usage(format!("nothing to change for rig {name}"))
            .with_hint("give at least one of --agent --image --command --env --secret --memory --cpus --pids --network --remote --max-polecats --merge --test-command --merge-style --gate-secrets --digest --placement --land-into-source"));
    }
    if !changes.is_empty() {
        let expected = expect_version.unwrap_or(current.version);
        let env = rigs::env_json(&after.env);
        let secrets = rigs::secrets_json(&after.secrets);
        let placement = rigs::secrets_json(&after.placement);
        let held = town.db.write(|tx| {
            let row = crate::state::Versioned {
                table: "rigs",
                kind: "rig",
                key_col: "name",
                key: name,
            };
            crate::state::cas_update(
                tx,
                &row,
                expected,
                &[
                    ("image", &after.image),
                    ("command", &after.command),
                    ("memory", &after.memory),
                    ("cpus", &after.cpus),
                    ("pids", &after.pids),
                    ("network", &after.network),
                    ("max_polecats", &after.max_polecats),
                    ("remote", &remote),
                    ("agent", &after.agent),
                    ("env", &env),
                    ("secrets", &secrets),
                    ("merge", &after.merge),
                    ("test_command", &after.test_command),
                    ("merge_style", &after.merge_style),
                    ("gate_secrets", &after.gate_secrets),
                    ("digest", &after.digest),
                    ("placement", &placement),
                ],
            )?;
            if let Some(on) = spec.land_into_source {
                super::mq::source::set_opt_tx(tx, name, on)?;
            }
            tx.event(
                "rig.updated",
                name,
                serde_json::json!({ "changes": changes }),
            )?;
            // Review is the human gate: what waits to land now waits for a person.
            if after.merge == super::mq::Policy::Review.as_str() && before.merge != after.merge {
                return super::mq::hold_unapproved_tx(tx, name);
            }
            Ok(Vec::new())
        })?;
        if !held.is_empty() {
            changes.push(format!(
                "{} merge request(s) now wait for review (`gt mq list --state needs-review`)",
                held.len()
            ));
        }
    }
    Ok(Changed {
        rig: get(town, name)?,
        changes,
    })
}

fn spec_is_empty(s: &RigSpec) -> bool {
    s.image.is_none()
        && s.command.is_none()
        && s.memory.is_none()
        && s.cpus.is_none()
        && s.remote.is_none()
        && s.max_polecats.is_none()
        && s.pids.is_none()
        && s.network.is_none()
        && s.agent.is_none()
        && s.env.is_none()
        && s.secrets.is_none()
        && s.merge.is_none()
        && s.test_command.is_none()
        && s.merge_style.is_none()
        && s.gate_secrets.is_none()
        && s.digest.is_none()
        && s.placement.is_none()
        && s.land_into_source.is_none()
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

pub fn get(town: &Town, name: &str) -> Result<Rig> {
    validate_name("rig", name)?;
    rigs::get(town.db.conn(), name)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| {
            Error::not_found(
                format!("rig {name}"),
                Some("`gt rig list` shows the rigs of this town".into()),
            )
        })
}

pub fn list(town: &Town) -> Result<Vec<Rig>> {
    rigs::all(town.db.conn()).map_err(|e| town.db_err(e))
}

#[derive(Debug, serde::Serialize)]
pub struct Removed {
    pub name: String,
    pub beads: usize,
    pub agents: usize,
    /// Where the rig's files went: kept, never deleted, so no work is lost.
    pub moved_to: Option<PathBuf>,
}

/// Remove a rig from the town. Refuses while any agent of it is live. The rig's files
/// (clone, worktrees, branches) are moved aside, never deleted.
pub fn remove(town: &mut Town, name: &str) -> Result<Removed> {
    get(town, name)?;
    let (beads, agents) = town.db.write(|tx| {
        let live = agents::live_count(tx, name).map_err(|e| tx.err(e))?;
        if live > 0 {
            return Err(Error::conflict(
                format!("rig {name} has {live} live agent(s)"),
                Some(format!("stop them first: `gt polecat list --rig {name}`, then `gt polecat nuke {name}/NAME`")),
            ));
        }
        let counts = rigs::delete_cascade(tx, name).map_err(|e| tx.err(e))?;
        tx.event("rig.removed", name, serde_json::json!({ "beads": counts.0, "agents": counts.1 }))?;
        Ok(counts)
    })?;
    let dir = town.rig_dir(name);
    let moved_to = if dir.exists() {
        let to = town
            .root
            .join("rigs")
            .join(format!(".removed-{name}-{}", now_ms()));
        std::fs::rename(&dir, &to).ctx(|| format!("moving {} aside", dir.display()))?;
        Some(to)
    } else {
        None
    };
    let mailboxes = town.root.join("agents").join(name);
    let _ = std::fs::remove_dir_all(mailboxes);
    Ok(Removed {
        name: name.to_string(),
        beads,
        agents,
        moved_to,
    })
}

/// What `gt rig prune` did, or would do, with one done bead's branch.
#[derive(Debug, serde::Serialize)]
pub struct Pruned {
    pub rig: String,
    pub bead: String,
    pub branch: String,
    pub commit: String,
    /// `pruned`, `would prune` (dry run) or `kept`.
    pub action: &'static str,
    /// Why it is safe to delete (where the commit lives on), or why it was kept.
    pub why: String,
}

/// Delete the local branches of `done` beads whose commit is safe elsewhere: on the rig's remote at that branch, or merged into the default
/// branch. Anything else is kept and said why: a branch is never the last copy of work
/// that goes. Each deletion is an event naming the commit, so it can be restored.
pub fn prune(town: &mut Town, rig: Option<&str>, dry_run: bool) -> Result<Vec<Pruned>> {
    let rigs = match rig {
        Some(name) => vec![get(town, name)?],
        None => list(town)?,
    };
    let mut out = Vec::new();
    for r in rigs {
        let repo_dir = town.repo_dir(&r.name);
        let repo = git2::Repository::open(&repo_dir)?;
        let conn = town.db.conn();
        let holders: Vec<agents::Agent> = agents::list(conn, Some(&r.name))
            .map_err(|e| town.db_err(e))?
            .into_iter()
            .filter(|a| a.state != "idle")
            .collect();
        let finished = crate::state::beads::list(conn, Some(&r.name), Some("done"))
            .map_err(|e| town.db_err(e))?;
        let candidates: Vec<(crate::state::beads::Bead, String, String)> = finished
            .into_iter()
            .filter_map(|b| {
                let branch = b.branch.clone()?;
                let head = crate::git::branch_head(&repo, &branch).ok().flatten()?;
                Some((b, branch, head))
            })
            .collect();
        if candidates.is_empty() {
            continue;
        }
        // One call to the remote for the whole rig; an unreachable remote keeps every
        // branch that is not merged (and says so) instead of failing the other rigs.
        let remote = r.remote.as_ref().map(|url| {
            let within = town
                .config
                .patrol
                .push_timeout
                .min(town.config.patrol.lease / 2);
            (url, crate::git::remote_branches(&repo_dir, url, within))
        });
        for (b, branch, head) in candidates {
            let kept = |why: String| Pruned {
                rig: r.name.clone(),
                bead: b.id.clone(),
                branch: branch.clone(),
                commit: head.clone(),
                action: "kept",
                why,
            };
            if let Some(a) = holders
                .iter()
                .find(|a| a.branch.as_deref() == Some(branch.as_str()))
            {
                out.push(kept(format!("{} ({}) still holds it", a.id, a.state)));
                continue;
            }
            // Work still in the merge queue keeps its branch: it may come back to it.
            if let Some(mr) = crate::state::merge_requests::latest(town.db.conn(), &b.id)
                .map_err(|e| town.db_err(e))?
                .filter(|m| m.state.is_open() && r.merge != super::mq::Policy::Off.as_str())
            {
                out.push(kept(format!(
                    "its merge request {} is {}",
                    mr.id,
                    mr.state.as_str()
                )));
                continue;
            }
            if let Some(at) = crate::git::checked_out_at(&repo, &branch)? {
                out.push(kept(format!("checked out at {}", at.display())));
                continue;
            }
            let verdict = if crate::git::is_merged_into(&repo, &head, &r.default_branch) {
                Ok(format!("merged into {}", r.default_branch))
            } else {
                match &remote {
                    Some((url, Err(e))) => Err(format!(
                        "cannot ask {url} whether it has this commit ({e}): kept"
                    )),
                    Some((url, Ok(heads))) => match heads.get(&branch) {
                        Some(c) if *c == head => Ok(format!("on {url} at the same commit")),
                        Some(_) => Err(format!(
                            "{url} has this branch at another commit; deleting it could lose work"
                        )),
                        None => Err(format!(
                            "not on {url} and not merged: deleting it would lose work"
                        )),
                    },
                    None => Err(format!(
                        "not merged into {} and the rig has no remote: deleting it would lose work",
                        r.default_branch
                    )),
                }
            };
            let why = match verdict {
                Ok(why) => why,
                Err(why) => {
                    out.push(kept(why));
                    continue;
                }
            };
            if !dry_run {
                // Recorded first: a crash before the deletion leaves a branch that the
                // next prune deletes; the other order would leave a merge request whose
                // branch is gone without a word.
                town.db.write(|tx| {
                    crate::state::merge_requests::mark_pruned(tx, &b.id, &branch, now_ms())
                        .map_err(|e| tx.err(e))?;
                    tx.event(
                        "branch.pruned",
                        &b.id,
                        serde_json::json!({ "rig": r.name, "branch": branch, "commit": head, "why": why }),
                    )
                })?;
                fail::fail_point!("prune.after_record");
                // Worktree bookkeeping is serialized per repo; the remote was asked before.
                let _lock = crate::git::lock(&repo_dir)?;
                crate::git::delete_branch(&repo, &branch)?;
            }
            out.push(Pruned {
                rig: r.name.clone(),
                bead: b.id.clone(),
                branch: branch.clone(),
                commit: head.clone(),
                action: if dry_run { "would prune" } else { "pruned" },
                why,
            });
        }
    }
    Ok(out)
}

/// Whether the rig's agents can start: the engine answers, the image is there, and in a
/// short container of that image (with gt mounted as slings do) `gt` and the program its
/// command starts with resolve. Each miss is one line with what to do; empty when ready.
pub fn check_setup(town: &Town, rt: &dyn crate::runtime::Runtime, rig: &Rig) -> Vec<String> {
    let mut misses = Vec::new();
    match rt.image_exists(&rig.image) {
        Err(e) => return vec![format!("setup not checked: {e}")],
        Ok(false) => {
            let build = match rig.agent.as_str() {
                "claude" | "codex" => format!("`gt image build {}`", rig.agent),
                _ if rig.image == super::image::Kind::Base.default_image() => {
                    "`gt image build`".to_string()
                }
                _ => format!("`gt image build --tag {}`, or build your own", rig.image),
            };
            return vec![format!(
                "image {} is not on the engine (gt never pulls): {build}",
                rig.image
            )];
        }
        Ok(true) => {}
    }
    let program = first_program(&rig.command);
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return vec![format!("setup not checked: locating gt: {e}")],
    };
    let binds = match super::workspace::gt_binds(town, &exe) {
        Ok(b) => b,
        Err(e) => return vec![format!("setup not checked: {e}")],
    };
    let (uid, gid) = super::workspace::agent_user();
    let probe = match &program {
        Some(p) => format!(
            "command -v gt >/dev/null || echo missing:gt; command -v {p} >/dev/null || echo missing:{p}"
        ),
        None => "command -v gt >/dev/null || echo missing:gt".to_string(),
    };
    let spec = crate::runtime::ContainerSpec {
        name: format!(
            "gt-{}-{}-setup-{}",
            town.id,
            rig.name,
            crate::util::random_hex(3)
        ),
        image: rig.image.clone(),
        cmd: vec!["sh".into(), "-c".into(), probe],
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
        labels: std::collections::BTreeMap::new(),
        binds,
        tmpfs: Vec::new(),
        read_only_root: true,
        workdir: "/".into(),
        user: format!("{uid}:{gid}"),
        memory: 64 << 20,
        cpus: 0.5,
        pids: 64,
        // Offline, where the runtime can say so (a Swarm service cannot).
        network: (town.config.runtime.kind == crate::runtime::RuntimeKind::Docker)
            .then(|| "none".into()),
        placement: rig.placement.clone(),
        secret_env: Vec::new(),
        init: true,
    };
    let id = match rt.create(&spec) {
        Ok(id) => id,
        Err(crate::runtime::CreateError::Other(e)) => {
            return vec![format!("setup not checked: {e}")];
        }
        Err(crate::runtime::CreateError::NameInUse) => return Vec::new(),
    };
    let result = (|| -> Result<String> {
        rt.start(&id)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while rt
            .inspect(&id)?
            .is_some_and(|c| c.state == crate::runtime::RunState::Running)
        {
            if std::time::Instant::now() > deadline {
                return Err(Error::Other(
                    "the setup probe did not finish in 30 s".into(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        rt.logs(&id, 20)
    })();
    let _ = rt.remove(&id, std::time::Duration::from_secs(0));
    match result {
        Err(e) => misses.push(format!("setup not checked: {e}")),
        Ok(out) => {
            for missing in out
                .lines()
                .filter_map(|l| l.trim().strip_prefix("missing:"))
            {
                misses.push(if missing == "gt" {
                    format!("gt does not run in image {} (it needs /bin/sh)", rig.image)
                } else {
                    format!(
                        "`{missing}` (the start of the rig's command) is not in image {}: build one that has it (`gt image build claude|codex`) or change --image/--command",
                        rig.image
                    )
                });
            }
        }
    }
    misses
}

/// The program an agent command starts with (after `VAR=value` assignments), when it is
/// a plain name a shell would look up.
fn first_program(command: &str) -> Option<String> {
    let word = command
        .split_whitespace()
        .find(|w| !w.contains('=') || w.starts_with('='))?;
    let plain = word
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    (plain
        && !matches!(
            word,
            "if" | "for" | "while" | "exec" | "set" | "echo" | "cd" | "true" | "false" | "export"
        ))
    .then(|| word.to_string())
}

#[cfg(test)]
mod setup_tests {
    #[test]
    fn the_program_a_command_starts_with_is_found() {
        assert_eq!(
            super::first_program("claude -p \"$(gt prime)\"").as_deref(),
            Some("claude")
        );
        assert_eq!(
            super::first_program("FOO=1 codex exec").as_deref(),
            Some("codex")
        );
        assert_eq!(super::first_program("echo hi; exit 64"), None);
        assert_eq!(super::first_program("$(weird)"), None);
    }
}

/// A rig as `gt rig add` and `gt rig show` tell it: its record and where its landed work
/// goes.
#[derive(Debug, serde::Serialize)]
pub struct Described {
    #[serde(flatten)]
    pub rig: Rig,
    pub lands_into: super::mq::source::LandsInto,
}

/// `rig` with where its landed work goes.
pub fn described(town: &Town, rig: Rig) -> Result<Described> {
    let lands_into = super::mq::source::lands_into(town, &rig)?;
    Ok(Described { rig, lands_into })
}

/// What `gt rig prune --remote` did, or would do, with one `polecat/*` branch of a
/// rig's remote.
#[derive(Debug, serde::Serialize)]
pub struct RemotePruned {
    pub rig: String,
    pub remote: String,
    pub branch: String,
    pub commit: String,
    /// The bead whose merge request named this branch, if any.
    pub bead: Option<String>,
    /// `deleted`, `would delete` (dry run) or `kept`.
    pub action: &'static str,
    /// Why it is safe to delete (where its work is), or why it was kept.
    pub why: String,
}

/// Delete the `polecat/*` branches on the rig's remote (of one rig, or every rig with a
/// remote) whose work is on the target, and only if each is still at the commit gt
/// pushed there (compare-and-swap): a person's push to such a branch is never deleted.
/// Anything else is kept, with why. Each deletion is an event naming the commit.
pub fn prune_remote(
    town: &mut Town,
    rig: Option<&str>,
    dry_run: bool,
) -> Result<Vec<RemotePruned>> {
    let rigs = match rig {
        Some(name) => {
            let r = get(town, name)?;
            if r.remote.is_none() {
                return Err(Error::usage(format!("rig {name} has no remote"))
                    .with_hint("`gt rig prune` (without --remote) prunes its local branches"));
            }
            vec![r]
        }
        None => list(town)?
            .into_iter()
            .filter(|r| r.remote.is_some())
            .collect(),
    };
    let within = town
        .config
        .patrol
        .push_timeout
        .min(town.config.patrol.lease / 2);
    let mut out = Vec::new();
    for r in rigs {
        let Some(url) = r.remote.clone() else {
            continue;
        };
        let repo_dir = town.repo_dir(&r.name);
        let repo = git2::Repository::open(&repo_dir)?;
        let heads = crate::git::remote_branches(&repo_dir, &url, within)?;
        let conn = town.db.conn();
        let mrs =
            crate::state::merge_requests::list(conn, Some(&r.name)).map_err(|e| town.db_err(e))?;
        let holders: Vec<agents::Agent> = agents::list(conn, Some(&r.name))
            .map_err(|e| town.db_err(e))?
            .into_iter()
            .filter(|a| a.state != "idle")
            .collect();
        let mut branches: Vec<(&String, &String)> = heads
            .iter()
            .filter(|(b, _)| b.starts_with("polecat/"))
            .collect();
        branches.sort();
        for (branch, commit) in branches {
            let recorded: Vec<&crate::state::merge_requests::MergeRequest> = mrs
                .iter()
                .filter(|m| &m.branch == branch && m.pushed_to.is_some())
                .collect();
            let mut row = RemotePruned {
                rig: r.name.clone(),
                remote: url.clone(),
                branch: branch.clone(),
                commit: commit.clone(),
                bead: recorded.last().map(|m| m.bead.clone()),
                action: "kept",
                why: String::new(),
            };
            let on_target = |c: &str| crate::git::is_merged_into(&repo, c, &r.default_branch);
            let verdict = if recorded.is_empty() {
                Err("no merge request of this rig was pushed there: not gt's to delete".to_string())
            } else if let Some(a) = holders
                .iter()
                .find(|a| a.branch.as_deref() == Some(branch.as_str()))
            {
                Err(format!("{} ({}) still works on it", a.id, a.state))
            } else if let Some(m) = recorded.iter().find(|m| m.state.is_open()) {
                Err(format!(
                    "its merge request {} is {}",
                    m.id,
                    m.state.as_str()
                ))
            } else if !recorded.iter().any(|m| &m.commit == commit) {
                Err(format!(
                    "it moved since gt pushed it (now at {}): someone else's push is never deleted",
                    &commit[..12.min(commit.len())]
                ))
            } else if on_target(commit) {
                Ok(format!("its commit is on {}", r.default_branch))
            } else if let Some(m) = recorded.iter().find(|m| {
                m.state == crate::state::merge_requests::MrState::Merged
                    && &m.commit == commit
                    && m.merged_commit.as_deref().is_some_and(on_target)
            }) {
                Ok(format!(
                    "merge request {} put its work on {}",
                    m.id, r.default_branch
                ))
            } else {
                Err(format!(
                    "its work is not on {}: deleting it could lose work",
                    r.default_branch
                ))
            };
            match verdict {
                Err(why) => row.why = why,
                Ok(why) if dry_run => {
                    row.action = "would delete";
                    row.why = why;
                }
                Ok(why) => {
                    crate::interrupt::step("prune.remote.before_delete")?;
                    town.db.renew_lease()?;
                    if crate::git::delete_remote_branch_cas(
                        &repo_dir, &url, branch, commit, within,
                    )? {
                        town.db.write(|tx| {
                            tx.event(
                                "branch.remote_pruned",
                                row.bead.as_deref().unwrap_or(&r.name),
                                serde_json::json!({ "rig": r.name, "remote": url, "branch": branch, "commit": commit, "why": why }),
                            )
                        })?;
                        row.action = "deleted";
                        row.why = why;
                    } else {
                        row.why = "it moved while it was being deleted: kept".into();
                    }
                }
            }
            out.push(row);
        }
    }
    Ok(out)
}

/// A script setting's change for a person: `what A → B` when both are one short line,
/// else the line counts and the changed lines only (`- old`, `+ new`), bounded.
fn text_change(what: &str, before: &str, after: &str) -> String {
    let short = |t: &str| !t.contains('\n') && t.chars().count() <= 60;
    if short(before) && short(after) {
        return format!("{what} {before} → {after}");
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let mut out = format!(
        "{what} changed ({} line{} → {} line{})",
        a.len(),
        if a.len() == 1 { "" } else { "s" },
        b.len(),
        if b.len() == 1 { "" } else { "s" }
    );
    const MAX_LINES: usize = 20;
    let shown: Vec<String> = if a.len() * b.len() > 250_000 {
        vec!["(too long to compare line by line; `gt rig show` prints it)".into()]
    } else {
        line_diff(&a, &b)
    };
    for l in shown.iter().take(MAX_LINES) {
        let l: String = l.chars().take(200).collect();
        out += &format!("\n    {l}");
    }
    if shown.len() > MAX_LINES {
        out += &format!("\n    … {} more changed line(s)", shown.len() - MAX_LINES);
    }
    out
}

/// The lines removed (`- `) and added (`+ `) from `a` to `b`, in order (a longest
/// common subsequence keeps the rest out).
fn line_diff(a: &[&str], b: &[&str]) -> Vec<String> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod change_tests {
    #[test]
    fn a_script_change_shows_only_its_changed_lines() {
        let c = super::text_change("command", "a\nb\nc", "a\nB\nc\nd");
        assert_eq!(
            c,
            "command changed (3 lines → 4 lines)\n    - b\n    + B\n    + d"
        );
        assert_eq!(super::text_change("command", "x", "y"), "command x → y");
    }
}
