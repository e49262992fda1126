//! `gt patrol`, `gt resume`, `gt doctor`.

use super::{Global, output};
use crate::error::{Error, Result};

/// One reconciliation pass: recover dead agents, hand over and land finished work.
///
/// Run it from cron every minute (`gt patrol install` sets that up) or keep `gt patrol
/// --watch` running.
///
/// Ingests agent requests, finishes done sagas, records how dead agents ended and
/// re-dispatches them with backoff (up to max_attempts), removes orphaned containers,
/// delivers mail and dispatches queued beads; in a drained rig (`gt drain`, `gt stop`)
/// it stops agents instead and dispatches nothing. Safe to overlap with itself: a
/// second patrol while one runs prints one line and exits 0.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
#[command(after_long_help = r#"Examples:
  gt patrol                     # one pass, e.g. from cron every minute
  gt patrol install             # run it every minute from cron
  gt patrol --watch             # loop; agents' requests and ended containers wake it
  gt patrol --watch --interval 60s --quiet"#)]
pub struct PatrolArgs {
    #[command(subcommand)]
    pub command: Option<PatrolCommand>,
    /// Loop until interrupted: a pass at once whenever an agent writes a request (done,
    /// checkpoint, mail) or a container of the town ends (exit, OOM kill), and one every
    /// --interval in any case. A pass that finds nothing new prints nothing; each line
    /// of one that does starts with the local time (with --json: one JSON report per
    /// line, its time in `at`).
    #[arg(long)]
    pub watch: bool,
    /// The longest wait between passes with --watch, e.g. 30s (at least 100ms;
    /// default: patrol.interval of gt.toml).
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum PatrolCommand {
    Install(InstallArgs),
    Uninstall(UninstallArgs),
}

/// Run patrol for this town from cron (every minute) or a systemd user timer.
///
/// Cron is the default; a systemd timer runs every `patrol.interval`. The entry names
/// this gt binary's absolute path and the town's. DOCKER_HOST, when set, is written into the entry (cron and systemd start patrol
/// without your environment).
///
/// Idempotent: installing again changes nothing, and an older entry of this town (from
/// another gt binary) is replaced. Other lines of your crontab, other towns' entries
/// included, are left alone. The cron entry logs to `.gt/patrol.log` in the town.
/// `gt status` then shows each pass; `gt doctor` warns when none succeeds.
///
/// GT_CRONTAB (the crontab command), GT_SYSTEMCTL (the systemctl command) and
/// XDG_CONFIG_HOME (where `systemd/user` is) point it elsewhere, e.g. in tests.
///
/// Exits 4 when the crontab command is missing, 1 when crontab refuses the table or
/// systemctl cannot enable the timer (the units stay written; the message names the
/// command to run), 2 when the town's or the binary's path cannot be written into an
/// entry.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt patrol install                  # a crontab line, every minute
  gt patrol install --systemd        # ~/.config/systemd/user/gt-patrol-ID.{service,timer}
  gt patrol install --print          # show the crontab line, install nothing
  gt patrol uninstall                # remove this town's entries, wherever they are"#)]
pub struct InstallArgs {
    /// Install a crontab line (the default).
    #[arg(long, conflicts_with = "systemd")]
    pub cron: bool,
    /// Install a systemd user service and timer, and enable the timer.
    #[arg(long)]
    pub systemd: bool,
    /// Print what would be installed; change nothing.
    #[arg(long)]
    pub print: bool,
}

/// Stop running patrol for this town from cron and systemd.
///
/// Removes the entries `gt patrol install` wrote for this town (other entries stay).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt patrol uninstall           # cron and systemd entries of this town
  gt patrol uninstall --cron    # only the crontab line"#)]
pub struct UninstallArgs {
    /// Only the crontab line.
    #[arg(long, conflicts_with = "systemd")]
    pub cron: bool,
    /// Only the systemd units.
    #[arg(long)]
    pub systemd: bool,
}

/// Dispatch again: close the circuit breaker and lift drains (`gt drain`, `gt stop`).
///
/// Without --rig: the circuit breaker closes and every drain is lifted. With --rig:
/// only that rig's drain is lifted (a drain of the whole town stays). Beads that a
/// drain stopped wait open and queued: the next patrol pass dispatches them again on
/// their branches.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt resume                     # everything dispatches again
  gt resume --rig api           # only rig api's drain is lifted
  gt patrol                     # dispatches the waiting beads now"#)]
pub struct ResumeArgs {
    /// Lift only this rig's drain (the circuit breaker stays as it is).
    #[arg(long, value_name = "RIG")]
    pub rig: Option<String>,
}

/// Check the town's invariants; exits 1 naming every breach.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt doctor                     # exits 1 naming every breach, with what to do
  gt --json doctor              # the checks and what each found"#)]
pub struct DoctorArgs {}

pub fn patrol(g: &Global, a: &PatrolArgs) -> Result<()> {
    match &a.command {
        Some(PatrolCommand::Install(i)) => return install(g, i),
        Some(PatrolCommand::Uninstall(u)) => return uninstall(g, u),
        None => {}
    }
    // Checked before the town is opened: a bad flag is a usage error wherever it is run.
    let interval = a
        .interval
        .as_deref()
        .map(|i| {
            crate::util::check_duration(i, crate::town::config::MIN_INTERVAL).map_err(|why| {
                Error::usage(format!("--interval {i:?} {why}")).with_hint("use e.g. 30s or 2m")
            })
        })
        .transpose()?;
    let mut town = g.town()?;
    let interval = interval.unwrap_or(town.config.patrol.interval);
    // With --watch, agents' requests and containers that end wake the loop at once.
    let mut waker = a.watch.then(|| crate::town::watch::Waker::start(&town));
    // With --watch: what the last pass said of standing conditions (a quiet agent, the
    // breaker open), so a pass that finds nothing new prints nothing.
    let mut standing = std::collections::BTreeSet::new();
    // With --watch: the failure the last pass said (Docker down: one line per outage,
    // not one per pass), and one line once passes succeed again.
    let mut failing: Option<String> = None;
    loop {
        let kind = town.config.runtime.clone();
        let r = crate::town::patrol::pass(&mut town, &|| crate::runtime::connect(&kind));
        match &r {
            Ok(report) if a.watch => {
                if let Some(was) = failing.take() {
                    eprintln!(
                        "{} {}",
                        output::clock(crate::util::now_ms()),
                        if was == RUNTIME_DOWN {
                            "patrol: the container runtime answers again; passes go on"
                        } else {
                            "patrol: passes succeed again"
                        }
                    );
                }
                print_watched(g, report, &mut standing)?
            }
            Ok(report) => print_report(g, report)?,
            Err(e) if a.watch => {
                let cause = match e {
                    Error::RuntimeUnavailable { .. } => RUNTIME_DOWN.to_string(),
                    other => other.to_string(),
                };
                if failing.as_deref() != Some(cause.as_str()) {
                    eprintln!(
                        "{} patrol: {}",
                        output::clock(crate::util::now_ms()),
                        output::safe(&e.to_string())
                    );
                }
                failing = Some(cause);
            }
            Err(_) => {}
        }
        let Some(w) = waker.as_mut() else {
            return r.map(|_| ());
        };
        w.refresh();
        if let Some(why) = w.wait(interval) {
            tracing::info!("woken by {why}");
        }
    }
}

/// What `--watch` remembers of a pass that failed because Docker did not answer.
const RUNTIME_DOWN: &str = "runtime down";

fn install(g: &Global, a: &InstallArgs) -> Result<()> {
    use crate::town::service::Scheduler;
    let town = g.town()?;
    let scheduler = if a.systemd {
        Scheduler::Systemd
    } else {
        Scheduler::Cron
    };
    let o = crate::town::service::install(&town, scheduler, a.print)?;
    if g.json {
        output::json(&o)?;
    } else if a.print {
        output::println_out(&output::safe(&o.text))?;
    } else {
        let what = match scheduler {
            Scheduler::Cron => "a crontab line".to_string(),
            Scheduler::Systemd => o.places.join(" and "),
        };
        output::println_out(&if o.changed {
            format!(
                "installed {}: patrol runs for {}\n{}",
                output::safe_line(&what),
                town.root.display(),
                output::safe(&o.text)
            )
        } else {
            format!(
                "already installed ({}); nothing changed",
                output::safe_line(&what)
            )
        })?;
    }
    match o.todo {
        Some(todo) => Err(Error::Other(format!("not finished: {todo}"))),
        None => Ok(()),
    }
}

fn uninstall(g: &Global, a: &UninstallArgs) -> Result<()> {
    use crate::town::service::Scheduler;
    let town = g.town()?;
    let only = match (a.cron, a.systemd) {
        (true, _) => Some(Scheduler::Cron),
        (_, true) => Some(Scheduler::Systemd),
        _ => None,
    };
    let outcomes = crate::town::service::uninstall(&town, only)?;
    if g.json {
        output::json(&outcomes)?;
    } else {
        let removed: Vec<String> = outcomes
            .iter()
            .filter(|o| o.changed)
            .map(|o| match o.scheduler {
                Scheduler::Cron => "the crontab line".to_string(),
                Scheduler::Systemd => o.places.join(" and "),
            })
            .collect();
        output::println_out(&if removed.is_empty() {
            "nothing to remove: patrol is not installed for this town".to_string()
        } else {
            format!("removed {}", output::safe_line(&removed.join("; ")))
        })?;
    }
    match outcomes.into_iter().find_map(|o| o.todo) {
        Some(todo) => Err(Error::Other(format!("not finished: {todo}"))),
        None => Ok(()),
    }
}

fn print_report(g: &Global, r: &crate::town::patrol::Report) -> Result<()> {
    if g.json {
        return output::json(r);
    }
    if !r.ran {
        return output::println_out(&format!(
            "another patrol is running ({}); nothing to do",
            output::safe_line(r.held_by.as_deref().unwrap_or("?"))
        ));
    }
    if g.quiet {
        return Ok(());
    }
    let (mut lines, states) = report_lines(r);
    lines.insert(0, counts_line(r));
    lines.extend(states);
    // Death reasons, worktree names and errors can carry what an agent wrote: one line
    // each, escaped.
    output::println_out(&lines_safe(&lines))
}

fn counts_line(r: &crate::town::patrol::Report) -> String {
    format!(
        "patrol: {} request(s) ingested, {} rejected, {} mail delivered",
        r.ingested, r.rejected, r.mail_delivered
    )
}

/// A pass of `--watch`: nothing when it found nothing new; else each line with the
/// local time (`21:04:05 done: api-3k9`), or with --json the report on one line with
/// its time (`"at"`, RFC 3339). `standing` holds the conditions said last time (a quiet
/// agent, the breaker open), said again only once they change.
fn print_watched(
    g: &Global,
    r: &crate::town::patrol::Report,
    standing: &mut std::collections::BTreeSet<String>,
) -> Result<()> {
    let (mut lines, states) = if r.ran {
        report_lines(r)
    } else {
        let held = format!(
            "another patrol is running ({})",
            r.held_by.as_deref().unwrap_or("?")
        );
        (Vec::new(), vec![held])
    };
    if r.ingested + r.rejected + r.mail_delivered > 0 {
        lines.insert(0, counts_line(r));
    }
    let now: std::collections::BTreeSet<String> = states.iter().cloned().collect();
    lines.extend(states.into_iter().filter(|l| !standing.contains(l)));
    *standing = now;
    if lines.is_empty() {
        return Ok(());
    }
    let at = crate::util::now_ms();
    if g.json {
        let mut v = serde_json::to_value(r).map_err(|e| Error::Other(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("at".into(), crate::util::format_time(at).into());
        }
        return output::println_out(&v.to_string());
    }
    if g.quiet {
        return Ok(());
    }
    let clock = output::clock(at);
    let lines: Vec<String> = lines.iter().map(|l| format!("{clock} {l}")).collect();
    output::println_out(&lines_safe(&lines))
}

/// What a pass did (one line each), and the standing conditions it found.
fn report_lines(r: &crate::town::patrol::Report) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut states = Vec::new();
    for b in &r.sagas_finished {
        lines.push(format!("done: {b}"));
    }
    for b in &r.sagas_pending {
        states.push(format!("done pending: {b}"));
    }
    for d in &r.deaths {
        lines.push(format!(
            "died: {} on {} (generation {}): {}",
            d.agent, d.bead, d.generation, d.reason
        ));
    }
    for b in &r.redispatched {
        lines.push(format!("re-dispatched: {b}"));
    }
    for b in &r.exhausted {
        lines.push(format!("gave up: {b} (the mayor has mail)"));
    }
    for b in &r.queued_dispatched {
        lines.push(format!("dispatched from queue: {b}"));
    }
    let mq = &r.merge_queue;
    for m in &mq.merged {
        lines.push(format!("merged: {m}"));
    }
    for m in &mq.returned {
        lines.push(format!("sent back: {m}"));
    }
    for m in &mq.waiting {
        states.push(format!("merge queue waits: {m}"));
    }
    for e in &mq.errors {
        lines.push(format!("merge queue: {e}"));
    }
    for c in &r.orphans_removed {
        lines.push(format!("removed orphan container {c}"));
    }
    for d in &r.drained {
        lines.push(format!("drained: {d}"));
    }
    for q in &r.quiet {
        states.push(format!("quiet: {q}"));
    }
    for w in &r.stray_worktrees_removed {
        lines.push(format!(
            "removed a clean, recorded worktree without an agent: {w}"
        ));
    }
    for w in &r.stray_worktrees {
        states.push(format!("worktree without an agent (kept): {w}"));
    }
    if r.breaker_open {
        states.push("CIRCUIT BREAKER OPEN: dispatches paused; `gt resume` closes it".into());
    }
    for e in &r.errors {
        lines.push(format!("error: {e}"));
    }
    (lines, states)
}

/// `lines`, each escaped as one line, one per line.
fn lines_safe(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| output::safe_line(l))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn resume(g: &Global, a: &ResumeArgs) -> Result<()> {
    let mut town = g.town()?;
    let was = match &a.rig {
        Some(_) => false,
        None => crate::town::patrol::resume_breaker(&mut town)?,
    };
    let lifted = crate::town::drain::lift(&mut town, a.rig.as_deref())?;
    let town_drain = match &a.rig {
        Some(r) => crate::town::drain::active(&town, r)?,
        None => None,
    };
    if g.json {
        return output::json(&serde_json::json!({
            "was_open": was,
            "drains_lifted": lifted,
            "still_drained": town_drain,
        }));
    }
    let mut lines = Vec::new();
    if a.rig.is_none() {
        lines.push(if was {
            "circuit breaker closed: dispatches resume".to_string()
        } else {
            "the circuit breaker was not open".to_string()
        });
    }
    for s in &lifted {
        lines.push(if s == crate::town::drain::TOWN {
            "drain of the whole town lifted".to_string()
        } else {
            format!("drain of rig {s} lifted")
        });
    }
    if let Some(d) = town_drain {
        lines.push(format!(
            "{} stays drained (since {}): `gt resume` without --rig lifts it",
            d.what(),
            output::since(d.since)
        ));
    } else if !lifted.is_empty() {
        lines.push("stopped beads are dispatched again on the next patrol pass".into());
    } else if let Some(r) = &a.rig {
        lines.push(format!("rig {r} was not drained"));
    }
    output::println_out(&lines_safe(&lines))
}

pub fn doctor(g: &Global, _a: &DoctorArgs) -> Result<()> {
    let mut town = g.town()?;
    crate::town::ingest::ingest_all(&mut town)?;
    let rt = crate::runtime::connect(&town.config.runtime);
    let mut report = crate::town::doctor::check(&town, rt.as_deref().ok())?;
    if let Err(e) = &rt {
        // What is missing, first: nothing of the containers could be checked without it.
        let hint = e.hint().map(|h| format!("; {h}")).unwrap_or_default();
        report.warnings.insert(0, format!("engine: {e}{hint}"));
    }
    if g.json {
        output::json(&report)?;
    } else {
        let mut lines = Vec::new();
        if rt.is_ok() {
            let at = match town.config.runtime.kind {
                crate::runtime::RuntimeKind::Docker => crate::runtime::docker::host(),
                crate::runtime::RuntimeKind::Swarm => {
                    format!("{} (swarm)", crate::runtime::docker::host())
                }
            };
            lines.push(format!("ok     the engine answers at {at}"));
        }
        for c in &report.checks {
            lines.push(format!(
                "{} {}",
                if c.ok { "ok    " } else { "BREACH" },
                c.name
            ));
            for b in &c.breaches {
                lines.push(format!("       {b}"));
            }
        }
        for w in &report.warnings {
            lines.push(format!("warn   {w}"));
        }
        output::println_out(&lines_safe(&lines))?;
    }
    if report.ok {
        Ok(())
    } else {
        let n: usize = report.checks.iter().map(|c| c.breaches.len()).sum();
        Err(Error::Other(format!("{n} invariant breach(es); see above")))
    }
}
