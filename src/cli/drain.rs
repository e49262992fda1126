//! `gt drain` and `gt stop`: stop the crew without losing work (`gt resume` lifts them).

use super::{Global, output};
use crate::error::{Error, Result};
use std::time::Duration;

/// Stop the crew gently: no new dispatches; agents are asked to stop, then stopped.
///
/// Each working agent is asked to finish its step; those still working at --timeout are
/// stopped with their work committed.
///
/// From now on nothing is dispatched in the drained scope (the whole town, or one rig
/// with --rig): `gt sling` refuses (exit 3), and patrol neither re-dispatches dead
/// agents nor starts queued beads there. Each working agent gets a mail asking it to
/// commit, record a checkpoint and exit (or to say `gt done` when its work is
/// complete). gt waits up to --timeout for them; an agent still working then is
/// stopped: its container gets SIGTERM, and what it left uncommitted is committed on
/// its branch, as the agent, before the container ends. Every stopped bead goes back
/// to `open`, queued, on its branch, and the attempt is not counted; its next agent
/// resumes from the branch and the checkpoints (`gt prime` shows them).
///
/// Beads whose agents said done are handed over as usual. If this command is
/// interrupted, the drain stays in force and patrol stops the remaining agents at the
/// deadline. `gt resume` lifts the drain (also while this command waits: it then ends
/// at once, and stops no one else; the agents it asked are told to carry on): patrol
/// dispatches the stopped beads again on its next pass.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt drain                      # the whole town; agents get 10 minutes
  gt drain --rig api --timeout 2m
  gt status                     # shows "drained since …"
  gt resume                     # dispatch again"#)]
pub struct DrainArgs {
    /// Drain only this rig (default: the whole town).
    #[arg(long, value_name = "RIG")]
    pub rig: Option<String>,
    /// How long agents get to stop on their own before they are stopped, e.g. 10m,
    /// 90s or 0s.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub timeout: String,
}

/// Stop the crew now: like `gt drain --timeout 0s`, no wait.
///
/// Nothing is dispatched in the scope (the whole town, or one rig with --rig) until
/// `gt resume`. Every working agent's container is stopped at once (all are signalled
/// together, then get one 10-second grace in all before they are killed); what the agent left
/// uncommitted is committed on its branch, as the agent, before the container ends.
/// Every stopped bead goes back to `open`, queued, on its branch, with the attempt not
/// counted; `gt resume` has patrol dispatch it again, and the next agent resumes from
/// the branch and the checkpoints.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt stop                       # the whole town, now
  gt stop --rig api
  gt resume --rig api           # dispatch again"#)]
pub struct StopArgs {
    /// Stop only this rig (default: the whole town).
    #[arg(long, value_name = "RIG")]
    pub rig: Option<String>,
}

pub fn drain(g: &Global, a: &DrainArgs) -> Result<()> {
    let timeout = crate::util::check_duration(&a.timeout, Duration::ZERO).map_err(|why| {
        Error::usage(format!("--timeout {:?} {why}", a.timeout))
            .with_hint("use e.g. 10m, 90s or 0s")
    })?;
    run(g, a.rig.as_deref(), Some(timeout))
}

pub fn stop(g: &Global, a: &StopArgs) -> Result<()> {
    run(g, a.rig.as_deref(), None)
}

fn run(g: &Global, rig: Option<&str>, timeout: Option<Duration>) -> Result<()> {
    let mut town = g.town()?;
    if let Some(r) = rig {
        crate::town::rig::get(&town, r)?;
    }
    // The drain is in force before anything else: even with the engine away, nothing
    // is dispatched from now on.
    let d = crate::town::drain::begin(&mut town, rig, timeout)?;
    let rt = crate::runtime::connect(&town.config.runtime).inspect_err(|_| {
        eprintln!(
            "gt: {} is drained (nothing is dispatched), but its agents cannot be stopped \
             while Docker is unavailable; patrol stops them once it answers",
            d.what()
        )
    })?;
    // Ctrl-C while waiting leaves the drain in force; patrol finishes it.
    crate::interrupt::install();
    let show = !g.json && !g.quiet;
    let mut progress = |line: &str| {
        if show {
            let _ = output::println_out(&output::safe_line(line));
        }
    };
    let r = crate::town::drain::run(&mut town, rt.as_ref(), rig, timeout, &mut progress)?;
    if g.json {
        return output::json(&r);
    }
    if g.quiet {
        return Ok(());
    }
    let what = match rig {
        Some(r) => format!("rig {r}"),
        None => "the whole town".into(),
    };
    let mut lines = Vec::new();
    for f in &r.finished {
        lines.push(format!("said done: {f} (handed over as usual)"));
    }
    for w in &r.still_working {
        lines.push(format!(
            "still starting: {w} (patrol stops it once it runs)"
        ));
    }
    for e in &r.errors {
        lines.push(format!("error: {e} (patrol tries again)"));
    }
    if r.lifted {
        lines.push(format!(
            "the drain of {what} was lifted (`gt resume`) while gt waited: {} agent(s) \
             stopped before that; the others carry on",
            r.parked.len()
        ));
    } else {
        lines.push(format!(
            "{what} is drained: {} agent(s) stopped; nothing is dispatched there until `gt resume{}`",
            r.parked.len(),
            rig.map(|r| format!(" --rig {r}")).unwrap_or_default()
        ));
    }
    output::println_out(
        &lines
            .iter()
            .map(|l| output::safe_line(l).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}
