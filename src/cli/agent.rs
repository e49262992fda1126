//! Agent mode (inside a container): `gt prime | hook | checkpoint | done | escalate`,
//! and `gt agent run`, the container entrypoint.

use super::{Global, output};
use crate::agent::mode;
use crate::agent::request::{Body, DoneStatus};
use crate::error::Result;

/// Agent mode: print your assignment, earlier attempts and unread mail (the resume context).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt prime                      # in the agent's container: what to do and what went before
  claude -p "$(gt prime)"       # how a rig's --command hands it to the agent"#)]
pub struct PrimeArgs {}

/// Agent mode: print the bead you work on (your hook), its branch and generation.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt hook                       # the bead, its branch and generation
  gt --json hook"#)]
pub struct HookArgs {}

/// Agent mode: record progress (the note and your branch head) for a later attempt.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt checkpoint -m "parser done; next: the error messages""#)]
pub struct CheckpointArgs {
    /// What is done and what is next.
    #[arg(short = 'm', long = "message")]
    pub message: String,
}

/// Agent mode: hand your work over.
///
/// What you left uncommitted is committed on your branch (with your own git, in your
/// container); the host then takes your branch, pushes it to the rig's remote (if it has
/// one), records a
/// merge request, closes the bead and mails the mayor.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt done -m "fixed; test added"                 # hand the work over
  gt done --status deferred -m "blocked on the API change""#)]
pub struct DoneArgs {
    /// How the work ended.
    #[arg(long, value_enum, default_value = "completed")]
    pub status: DoneStatus,
    /// A note for the mayor.
    #[arg(short = 'm', long = "message", default_value = "")]
    pub message: String,
}

/// Agent mode: ask the mayor (a human) for help.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt escalate -s "Which database?" -m "The spec names two; which one is live?""#)]
pub struct EscalateArgs {
    /// What you need.
    #[arg(short = 'm', long = "message")]
    pub message: String,
    /// A one-line subject.
    #[arg(short = 's', long = "subject", default_value = "help needed")]
    pub subject: String,
}

/// The in-container side of gt (used by agent containers, not by people).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt agent run -- sh -c 'my-agent "$(gt prime)"'   # what every agent container runs"#)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum AgentCommand {
    Run(RunArgs),
}

/// The agent container's entrypoint: run CMD if this container's dispatch is current.
///
/// CMD runs only if /gt/assignment.json still names this container's generation
/// (GT_GENERATION); a stale container exits 75 at once.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt agent run -- sh -c 'my-agent "$(gt prime)"'   # the entrypoint gt gives each container"#)]
pub struct RunArgs {
    /// The agent command and its arguments.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

pub fn prime(g: &Global, _a: &PrimeArgs) -> Result<()> {
    let c = mode::ctx()?;
    if g.json {
        return output::json(&c.assignment);
    }
    output::println_out(c.prime()?.trim_end())
}

pub fn hook(g: &Global, _a: &HookArgs) -> Result<()> {
    let c = mode::ctx()?;
    let a = &c.assignment;
    if g.json {
        return output::json(
            &serde_json::json!({ "bead": a.bead, "title": a.title, "branch": a.branch, "generation": a.generation }),
        );
    }
    output::println_out(&format!(
        "{}: {} (branch {}, generation {})",
        a.bead, a.title, a.branch, a.generation
    ))
}

pub fn checkpoint(g: &Global, a: &CheckpointArgs) -> Result<()> {
    let c = mode::ctx()?;
    let id = c.send(Body::Checkpoint {
        note: a.message.clone(),
        head: c.head(),
    })?;
    ack(g, &id, "checkpoint recorded")
}

pub fn done(g: &Global, a: &DoneArgs) -> Result<()> {
    let c = mode::ctx()?;
    let id = c.done(a.status, &a.message)?;
    ack(g, &id, "done: the host takes it from here; you may exit")
}

pub fn escalate(g: &Global, a: &EscalateArgs) -> Result<()> {
    let c = mode::ctx()?;
    let id = c.send(Body::Escalate {
        subject: a.subject.clone(),
        body: a.message.clone(),
    })?;
    ack(g, &id, "escalated to the mayor")
}

fn ack(g: &Global, id: &str, what: &str) -> Result<()> {
    if g.json {
        output::json(&serde_json::json!({ "request": id }))
    } else if g.quiet {
        Ok(())
    } else {
        output::println_out(&format!("{what} (request {id})"))
    }
}

pub fn agent(_g: &Global, args: &AgentArgs) -> Result<()> {
    match &args.command {
        AgentCommand::Run(a) => {
            let code = crate::agent::run(&a.cmd)?;
            std::process::exit(code)
        }
    }
}
