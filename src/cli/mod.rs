//! The command line: parsing (clap), one file per command group, rendering. Commands
//! decide nothing: they call a `town` use case and render its typed result.

pub mod agent;
pub mod bead;
pub mod convoy;
pub mod costs;
pub mod diff;
pub mod docs;
pub mod drain;
pub mod image;
pub mod init;
pub mod mail;
pub mod mq;
pub mod output;
pub mod patrol;
pub mod polecat;
pub mod rig;
pub mod secret;
pub mod serve;
pub mod sling;
pub mod status;
pub mod top;

use crate::error::Result;
use crate::town::Town;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// gt runs a crew of coding agents on one machine: each works one bead (work item) in its
/// own Docker container, on its own git worktree and branch.
///
/// The words: a town is the directory gt keeps everything in (`gt init`; gt.toml and
/// .gt/town.db, one SQLite file). A rig is a git repository the town works on (`gt rig
/// add`). A bead is one work item of a rig, with an id like api-3k9 (`gt bead create`).
/// A polecat is a worker agent of a rig, named like api/furiosa: to sling a bead is to
/// give it to a polecat, which works it in its own container on its own branch (`gt
/// sling`). The mayor is the inbox where finished work and calls for help land (`gt mail
/// inbox`). A finished bead becomes a merge request (MR) that the merge queue lands on
/// the rig's default branch after its gate (the rig's test command) passes (`gt mq`). A
/// convoy tracks beads together. Patrol (`gt patrol`, from cron: `gt patrol install`) is
/// one reconciliation pass: it recovers from every crash, re-dispatches dead agents and
/// lands finished work.
///
/// First steps: gt init ~/town; gt rig add; gt bead create; gt sling; gt patrol --watch;
/// gt mq list. Each command's --help (and man page) ends with examples.
#[derive(Parser, Debug)]
#[command(
    name = "gt",
    version,
    after_help = docs::exit_codes_help(),
    after_long_help = format!("{EXAMPLES}\n\n{}", docs::exit_codes_help()),
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = r#"Examples:
  gt init ~/town                    # a new town (then run gt in ~/town, or give --town)
  gt rig add api ~/src/api --image gt-agent:latest --command 'my-agent "$(gt prime)"'
  gt bead create --rig api "Fix the login form" -m "It returns 500 on an empty password"
  gt sling api-3k9                  # a polecat starts on it in its own container
  gt patrol                         # one reconciliation pass (gt patrol install: every minute)
  gt status                         # the town at a glance
  gt --town ~/town --json bead list # any command, on a named town, as JSON"#;

#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The town directory (default: the nearest parent of the working directory with .gt/).
    #[arg(long, global = true, env = "GT_TOWN", value_name = "DIR")]
    pub town: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print diagnostics on stderr (-vv for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    pub fn town(&self) -> Result<Town> {
        let town = Town::open(self.town.as_deref())?;
        crate::runtime::docker::set_call_timeout(town.config.patrol.engine_timeout);
        output::redact_secrets(crate::town::secret::Redactor::of(&town));
        Ok(town)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Init(init::InitArgs),
    Rig(Box<rig::RigArgs>),
    Secret(secret::SecretArgs),
    Image(image::ImageArgs),
    Costs(costs::CostsArgs),
    Diff(diff::DiffArgs),
    Bead(bead::BeadArgs),
    Sling(sling::SlingArgs),
    Polecat(polecat::PolecatArgs),
    Peek(polecat::PeekArgs),
    Convoy(convoy::ConvoyArgs),
    Mail(mail::MailArgs),
    Mq(mq::MqArgs),
    Patrol(patrol::PatrolArgs),
    Serve(serve::ServeArgs),
    Drain(drain::DrainArgs),
    Stop(drain::StopArgs),
    Resume(patrol::ResumeArgs),
    Status(status::StatusArgs),
    Top(top::TopArgs),
    Log(status::LogArgs),
    Doctor(patrol::DoctorArgs),
    Completions(docs::CompletionsArgs),
    Prime(agent::PrimeArgs),
    Hook(agent::HookArgs),
    Checkpoint(agent::CheckpointArgs),
    Done(agent::DoneArgs),
    Escalate(agent::EscalateArgs),
    Agent(agent::AgentArgs),
}

pub fn run(cli: &Cli) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Rig(a) => rig::run(g, a),
        Command::Secret(a) => secret::run(g, a),
        Command::Image(a) => image::run(g, a),
        Command::Costs(a) => costs::run(g, a),
        Command::Diff(a) => diff::run(g, a),
        Command::Bead(a) => bead::run(g, a),
        Command::Sling(a) => sling::run(g, a),
        Command::Polecat(a) => polecat::run(g, a),
        Command::Peek(a) => polecat::peek(g, a),
        Command::Convoy(a) => convoy::run(g, a),
        Command::Mail(a) => mail::run(g, a),
        Command::Mq(a) => mq::run(g, a),
        Command::Patrol(a) => patrol::patrol(g, a),
        Command::Serve(a) => serve::serve(g, a),
        Command::Drain(a) => drain::drain(g, a),
        Command::Stop(a) => drain::stop(g, a),
        Command::Resume(a) => patrol::resume(g, a),
        Command::Doctor(a) => patrol::doctor(g, a),
        Command::Prime(a) => agent::prime(g, a),
        Command::Hook(a) => agent::hook(g, a),
        Command::Checkpoint(a) => agent::checkpoint(g, a),
        Command::Done(a) => agent::done(g, a),
        Command::Escalate(a) => agent::escalate(g, a),
        Command::Agent(a) => agent::agent(g, a),
        Command::Status(a) => status::status(g, a),
        Command::Top(a) => top::top(g, a),
        Command::Log(a) => status::log(g, a),
        Command::Completions(a) => docs::completions(g, a),
    }
}
