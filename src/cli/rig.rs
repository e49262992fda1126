//! `gt rig add | list | show | set | remove | prune`.

use super::{Global, output};
use crate::error::Result;
use crate::state::rigs::Rig;
use crate::town::rig::RigSpec;
use crate::util::format_size;

/// Manage rigs: the git repositories (projects) this town runs agents on.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt rig add api ~/src/api --image gt-agent:latest --command 'my-agent "$(gt prime)"'
  gt rig list                   # every rig: image, limits, source
  gt rig show api               # one rig in full
  gt rig set api --memory 4g    # from the next dispatch on
  gt rig prune --dry-run        # branches of done beads that could go"#)]
pub struct RigArgs {
    #[command(subcommand)]
    pub command: RigCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum RigCommand {
    Add(AddArgs),
    /// List the rigs of this town.
    #[command(after_long_help = r#"Examples:
  gt rig list                   # name, default branch, image, limits, source
  gt --json rig list            # every setting, for a program"#)]
    List,
    /// Show a rig's source, remote, default branch and agent settings.
    #[command(after_long_help = r#"Examples:
  gt rig show api               # source, remote, default branch, agent settings
  gt --json rig show api        # the same as JSON (its version for --if-version)"#)]
    Show(NameArg),
    Set(SetArgs),
    /// Remove a rig from the town; refused while any of its agents lives.
    ///
    /// Its files are moved aside (rigs/.removed-NAME-TIME), never deleted.
    #[command(after_long_help = r#"Examples:
  gt rig remove api             # refused while an agent of it lives (exits 3)
  gt polecat nuke api/furiosa   # stop it (its work stays on its branch)
  gt rig remove api             # files moved aside to rigs/.removed-api-TIME"#)]
    Remove(NameArg),
    Prune(PruneArgs),
}

/// Delete the local branches of done beads whose work is safe elsewhere.
///
/// A done bead's branch goes when its commit is on the rig's remote at that branch, or
/// merged into the default branch; every other branch is kept, with the reason (the
/// branches of failed, escalated, deferred and cancelled beads always stay: a reopened
/// bead resumes on its branch). Branches held by a polecat or checked out in a worktree are never
/// touched. Each deletion is logged (`gt log`) with the commit, so it can be restored
/// with `git branch NAME COMMIT`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt rig prune --dry-run        # what would go, and why the rest stays
  gt rig prune api              # delete api's branches whose work is safe
  gt log --subject api          # each deletion, with its commit"#)]
pub struct PruneArgs {
    /// Only this rig (default: every rig).
    pub name: Option<String>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Prune the rig's remote instead: its `polecat/*` branches whose work is on the
    /// default branch, each only if still at the commit gt pushed (a branch someone
    /// pushed to is kept). Patrol does this by itself after each merge.
    #[arg(long)]
    pub remote: bool,
}

/// Add a rig: clone SOURCE into rigs/NAME/repo and record its agent settings.
///
/// `--agent claude` or `--agent codex` sets the rig up for that coding agent: its image
/// (gt-claude:latest, gt-codex:latest), command, environment and the secret it needs
/// (ANTHROPIC_API_KEY, or CLAUDE_CODE_OAUTH_TOKEN when only that one is set;
/// OPENAI_API_KEY), each unless given too. Set the secret with `gt secret set NAME`.
/// Settings not given take the town defaults from gt.toml. A local path is cloned with
/// no remote: agents' branches stay in the town, and landed work is fast-forwarded into
/// that repository's default branch when git allows it (not checked out, or checked out
/// with a clean work tree; else you are told the command that takes it;
/// --land-into-source off keeps it in the town's clone). A URL is cloned with the user's
/// `git` and becomes the remote that finished work is pushed to, unless --remote says
/// otherwise. The command prints where landed work goes.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt rig add api ~/src/api --image gt-agent:latest --command 'my-agent "$(gt prime)"'
  gt rig add web ~/src/web --agent claude --remote git@github.com:me/web.git
  gt rig add docs ~/src/docs --image my-agent:1 --command 'my-agent "$(gt prime)"' \
      --env RUST_LOG=info --secret GITHUB_TOKEN --memory 2g --cpus 2 --max-polecats 4
  printf %s "$ANTHROPIC_API_KEY" | gt secret set ANTHROPIC_API_KEY   # the key web needs"#)]
pub struct AddArgs {
    /// The rig's name: [a-z0-9][a-z0-9_-]{0,39}. Bead ids start with it.
    pub name: String,
    /// A path to a git repository, or a URL `git clone` understands.
    pub source: String,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// A rig's agent settings, as `rig add` records them and `rig set` changes them.
#[derive(clap::Args, Debug)]
pub struct SettingsArgs {
    /// The coding agent: claude or codex fill image, command, env and the secret the agent
    /// needs (except those given too); custom (the default) is your own --image and
    /// --command.
    #[arg(long, value_name = "AGENT", value_parser = crate::town::rig::Preset::NAMES)]
    pub agent: Option<String>,
    /// The agent container image (built locally; never pulled).
    #[arg(long)]
    pub image: Option<String>,
    /// The agent command, run inside the container by `gt agent run --` (`sh -c`). Never
    /// put a key in it: it is stored and visible in `docker inspect`; use --secret.
    #[arg(long)]
    pub command: Option<String>,
    /// An environment variable of the agent command, KEY=VALUE (repeatable). Not for
    /// secrets: values are stored, shown by `gt rig show` and visible in `docker
    /// inspect`. On `rig set` the given list replaces the rig's whole environment.
    #[arg(long = "env", value_name = "KEY=VALUE", conflicts_with = "no_env")]
    pub env: Vec<String>,
    /// Clear the rig's environment (a preset's included).
    #[arg(long)]
    pub no_env: bool,
    /// A town secret (`gt secret set NAME`) the agents get (repeatable): mounted read-only
    /// at /gt-secrets/NAME and set as the environment variable NAME of the agent command
    /// only. On `rig set` the given list replaces the rig's secrets.
    #[arg(long = "secret", value_name = "NAME", conflicts_with = "no_secrets")]
    pub secret: Vec<String>,
    /// On a swarm: a placement constraint for the rig's agents and gates, as Swarm
    /// reads it (repeatable): node.labels.gpu==true, node.hostname!=laptop,
    /// node.role==worker. On `rig set` the given list replaces the rig's; ignored by the
    /// docker runtime.
    #[arg(
        long = "placement",
        value_name = "CONSTRAINT",
        conflicts_with = "no_placement"
    )]
    pub placement: Vec<String>,
    /// Remove the rig's placement constraints (its agents may run on any node).
    #[arg(long)]
    pub no_placement: bool,
    /// Attach no secrets (drops a preset's secret too).
    #[arg(long)]
    pub no_secrets: bool,
    /// Container memory limit, e.g. 512m or 2g (at least 6m, Docker's minimum).
    #[arg(long)]
    pub memory: Option<String>,
    /// Container CPU limit, e.g. 2 or 0.5 (0.01 to 1024).
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<f64>,
    /// Where finished branches are pushed (a URL or a path to a bare repository; not
    /// empty).
    #[arg(long)]
    pub remote: Option<String>,
    /// How many agents of this rig may run at once; more beads wait queued.
    #[arg(long, value_name = "N")]
    pub max_polecats: Option<u32>,
    /// Container process limit (default 512).
    #[arg(long, value_name = "N")]
    pub pids: Option<u32>,
    /// The agents' Docker network: default (the engine's), none (offline agents), host,
    /// or the name of a network you created. On a swarm (`[runtime] kind = "swarm"`):
    /// default, host or a swarm network; Swarm has no none.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// How finished work lands on the default branch: review (a person approves each
    /// merge request with `gt mq approve`; the default of a new rig), auto (lands
    /// without approval once the gate passes), off (only recorded, as before).
    #[arg(long, value_name = "POLICY", value_parser = crate::town::mq::Policy::NAMES)]
    pub merge: Option<String>,
    /// The gate: a shell command run (`sh -c`) on every candidate (target + the change)
    /// in a container with the agents' image, limits and isolation; exit 0 lets it land.
    /// An empty value removes the gate.
    #[arg(long, value_name = "CMD")]
    pub test_command: Option<String>,
    /// How a change lands: merge (a merge commit; default), squash (one commit), rebase
    /// (its commits replayed on the target).
    #[arg(long, value_name = "STYLE", value_parser = crate::town::mq::Style::NAMES)]
    pub merge_style: Option<String>,
    /// Whether the gate gets the rig's secrets (off by default: a gate runs the agent's
    /// code).
    #[arg(long, value_name = "ON|OFF", value_parser = ["on", "off"])]
    pub gate_secrets: Option<String>,
    /// Fold this rig's done notices into one digest mail to the mayor per patrol pass
    /// (escalations are never folded).
    #[arg(long, value_name = "ON|OFF", value_parser = ["on", "off"])]
    pub digest: Option<String>,
    /// For a rig whose SOURCE is a local repository and that has no --remote: whether
    /// landed work is fast-forwarded into that repository's default branch (on, the
    /// default; only when git allows it: the branch not checked out, or checked out
    /// with a clean work tree, which is then updated). off: it stays in the town's
    /// clone (rigs/NAME/repo).
    #[arg(long, value_name = "ON|OFF", value_parser = ["on", "off"])]
    pub land_into_source: Option<String>,
}

impl SettingsArgs {
    fn spec(&self, name: &str, source: &str) -> RigSpec {
        RigSpec {
            name: name.to_string(),
            source: source.to_string(),
            image: self.image.clone(),
            command: self.command.clone(),
            memory: self.memory.clone(),
            cpus: self.cpus,
            remote: self.remote.clone(),
            max_polecats: self.max_polecats,
            pids: self.pids,
            network: self.network.clone(),
            agent: self.agent.clone(),
            env: if self.no_env {
                Some(Vec::new())
            } else {
                (!self.env.is_empty()).then(|| self.env.clone())
            },
            secrets: if self.no_secrets {
                Some(Vec::new())
            } else {
                (!self.secret.is_empty()).then(|| self.secret.clone())
            },
            merge: self.merge.clone(),
            test_command: self.test_command.clone(),
            merge_style: self.merge_style.clone(),
            gate_secrets: self.gate_secrets.as_deref().map(|v| v == "on"),
            digest: self.digest.as_deref().map(|v| v == "on"),
            land_into_source: self.land_into_source.as_deref().map(|v| v == "on"),
            placement: if self.no_placement {
                Some(Vec::new())
            } else {
                (!self.placement.is_empty()).then(|| self.placement.clone())
            },
        }
    }

    /// Warn (stderr) about a value given on the command line that looks like a key.
    fn warn_keys(&self) {
        let given = self
            .command
            .iter()
            .map(|c| ("--command", c.as_str()))
            .chain(self.env.iter().map(|e| ("--env", e.as_str())));
        for (flag, value) in given {
            if crate::town::secret::looks_like_key(value) {
                let what = match flag {
                    "--env" => format!("--env {}", value.split('=').next().unwrap_or("")),
                    _ => flag.to_string(),
                };
                tracing::warn!(
                    "{what} looks like it holds an API key or token; it is stored in the town database and visible in `docker inspect`. Keep keys in `gt secret set NAME` and attach them with --secret NAME"
                );
            }
        }
    }
}

/// Warn (stderr) about what would keep the rig's agents from starting (image, command,
/// gt in the image), checked with a short container of the image.
fn warn_setup(town: &crate::town::Town, rig: &Rig) {
    let misses = match crate::runtime::connect(&town.config.runtime) {
        Ok(rt) => crate::town::rig::check_setup(town, rt.as_ref(), rig),
        Err(e) => vec![format!("setup not checked: {e}")],
    };
    for m in misses {
        tracing::warn!("rig {}: {m}", rig.name);
    }
}

/// Warn (stderr) about secrets the rig names that are not set yet.
fn warn_missing(town: &crate::town::Town, rig: &Rig) {
    for name in crate::town::secret::missing(town, &rig.secrets) {
        tracing::warn!(
            "secret {name} is not set yet; `gt sling` refuses rig {} until it is: `gt secret set {name}`",
            rig.name
        );
    }
}

/// Change a rig's agent settings or remote, from the next dispatch on.
///
/// Running agents keep the container they have; a re-dispatch or a new sling uses the
/// new settings (e.g. more --memory after OOM kills, a fixed --image). A new --remote
/// applies from the next push on. --env and --secret replace the rig's whole list
/// (--no-env, --no-secrets clear it); --agent claude|codex sets the preset's image,
/// command, env and secret except those given too. Prints each change (environment
/// variables by name only); `gt log --subject RIG` keeps them.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt rig set api --memory 4g              # after OOM kills; from the next dispatch on
  gt rig set api --merge auto             # land without approval once the gate passes
  gt rig set api --test-command 'make test'   # the gate ('' removes it)
  gt rig set api --merge-style squash     # merge (default), squash or rebase
  gt rig set api --digest on              # one digest mail per patrol pass
  gt rig set api --env RUST_LOG=debug     # replaces the whole environment
  gt rig set api --cpus 1 --if-version 1  # refused: changed since version 1 (exits 3)"#)]
pub struct SetArgs {
    /// The rig's name.
    pub name: String,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Only change it if the rig's version is still N, the one you read (exit 3
    /// otherwise).
    #[arg(long, value_name = "N")]
    pub if_version: Option<i64>,
}

#[derive(clap::Args, Debug)]
pub struct NameArg {
    /// The rig's name.
    pub name: String,
}

pub fn run(g: &Global, args: &RigArgs) -> Result<()> {
    match &args.command {
        RigCommand::Add(a) => {
            let mut town = g.town()?;
            let spec = a.settings.spec(&a.name, &a.source);
            a.settings.warn_keys();
            let rig = crate::town::rig::add(&mut town, &spec)?;
            warn_missing(&town, &rig);
            warn_setup(&town, &rig);
            let d = crate::town::rig::described(&town, rig)?;
            if g.json {
                output::json(&d)
            } else if !g.quiet {
                let rig = &d.rig;
                output::println_out(&format!(
                    "added rig {} ({}, default branch {})\nlanded work goes into {}",
                    rig.name,
                    rig.source,
                    rig.default_branch,
                    d.lands_into.describe()
                ))
            } else {
                Ok(())
            }
        }
        RigCommand::List => {
            let town = g.town()?;
            let rigs = crate::town::rig::list(&town)?;
            if g.json {
                return output::json(&rigs);
            }
            let mut t =
                output::Table::new(&["name", "branch", "image", "memory", "cpus", "max", "source"]);
            for r in &rigs {
                t.row(vec![
                    r.name.clone(),
                    r.default_branch.clone(),
                    r.image.clone(),
                    format_size(r.memory),
                    r.cpus.to_string(),
                    r.max_polecats.to_string(),
                    r.source.clone(),
                ]);
            }
            if t.is_empty() {
                return output::println_out("no rigs yet; add one with `gt rig add NAME SOURCE`");
            }
            t.print()
        }
        RigCommand::Show(n) => {
            let town = g.town()?;
            let rig = crate::town::rig::get(&town, &n.name)?;
            let d = crate::town::rig::described(&town, rig)?;
            if g.json {
                return output::json(&d);
            }
            output::println_out(&format!(
                "{}\nlands into:     {}",
                describe(&d.rig),
                d.lands_into.describe()
            ))
        }
        RigCommand::Set(a) => {
            let mut town = g.town()?;
            let spec = a.settings.spec(&a.name, "");
            a.settings.warn_keys();
            let changed = crate::town::rig::set(&mut town, &a.name, &spec, a.if_version)?;
            warn_missing(&town, &changed.rig);
            warn_setup(&town, &changed.rig);
            if g.json {
                return output::json(&changed);
            }
            if changed.changes.is_empty() {
                return output::println_out(&format!(
                    "rig {} already has these settings (version {})",
                    a.name, changed.rig.version
                ));
            }
            output::println_out(&format!(
                "updated rig {} (version {}); from the next dispatch on:\n  {}",
                a.name,
                changed.rig.version,
                changed.changes.join("\n  ")
            ))
        }
        RigCommand::Prune(p) if p.remote => {
            let mut town = g.town()?;
            let rows = crate::town::rig::prune_remote(&mut town, p.name.as_deref(), p.dry_run)?;
            if g.json {
                return output::json(&rows);
            }
            if rows.is_empty() {
                return output::println_out("no polecat branches on any rig's remote");
            }
            let mut t = output::Table::new(&["rig", "branch", "commit", "action", "why"]);
            for r in &rows {
                t.row(vec![
                    r.rig.clone(),
                    output::safe_line(&r.branch).into_owned(),
                    output::short(&r.commit, 12).to_string(),
                    r.action.to_string(),
                    r.why.clone(),
                ]);
            }
            t.print()
        }
        RigCommand::Prune(p) => {
            let mut town = g.town()?;
            let rows = crate::town::rig::prune(&mut town, p.name.as_deref(), p.dry_run)?;
            if g.json {
                return output::json(&rows);
            }
            if rows.is_empty() {
                return output::println_out("no branches of done beads to prune");
            }
            let mut t = output::Table::new(&["rig", "bead", "branch", "action", "why"]);
            for r in &rows {
                t.row(vec![
                    r.rig.clone(),
                    r.bead.clone(),
                    r.branch.clone(),
                    r.action.to_string(),
                    r.why.clone(),
                ]);
            }
            t.print()
        }
        RigCommand::Remove(n) => {
            let mut town = g.town()?;
            let removed = crate::town::rig::remove(&mut town, &n.name)?;
            if g.json {
                return output::json(&removed);
            }
            let mut msg = format!(
                "removed rig {} ({} beads, {} agents)",
                removed.name, removed.beads, removed.agents
            );
            if let Some(to) = &removed.moved_to {
                msg += &format!("; its files are kept at {}", to.display());
            }
            output::println_out(&msg)
        }
    }
}

/// A rig in words: environment variables with their (non-secret) values, secrets by
/// name only.
fn describe(r: &Rig) -> String {
    let env = if r.env.is_empty() {
        "none".to_string()
    } else {
        r.env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n                ")
    };
    let secrets = if r.secrets.is_empty() {
        "none".to_string()
    } else {
        r.secrets.join(", ")
    };
    format!(
        "name:           {}\nsource:         {}\nremote:         {}\ndefault branch: {}\nagent:          {}\nimage:          {}\ncommand:        {}\nenv:            {}\nsecrets:        {}\nmemory:         {}\ncpus:           {}\npids:           {}\nnetwork:        {}\nplacement:      {}\nmax polecats:   {}\nmerge:          {} ({}{})\ntest command:   {}\ndigest:         {}\ncreated:        {}\nversion:        {}",
        r.name,
        r.source,
        output::opt(&r.remote),
        r.default_branch,
        r.agent,
        r.image,
        r.command,
        env,
        secrets,
        format_size(r.memory),
        r.cpus,
        r.pids,
        r.network,
        if r.placement.is_empty() {
            "any node".to_string()
        } else {
            r.placement.join(", ")
        },
        r.max_polecats,
        r.merge,
        r.merge_style,
        if r.gate_secrets {
            ", the gate gets the secrets"
        } else {
            ""
        },
        r.test_command.as_deref().unwrap_or("none (no gate)"),
        if r.digest { "on" } else { "off" },
        output::time(r.created_at),
        r.version
    )
}
