//! `gt status` and `gt log`.

use super::{Global, output};
use crate::error::{Error, Result};

/// The town at a glance: engine, patrol, unread mail, and each rig's beads and agents.
///
/// Whether the container engine answers, when patrol last got through a pass and what it
/// found, the mayor's unread mail, the circuit breaker, and per rig its beads (open,
/// queued, active, done, failed) and agents.
///
/// Times are shown relative to now ("4m ago"); `--json` has the exact stamps (epoch
/// milliseconds). Colour only on a terminal, never with NO_COLOR set. The engine is
/// asked with a short timeout (3s): when it does not answer, agent states are shown as
/// last recorded and marked unverified.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt status                     # engine, patrol, mail, beads and agents per rig
  gt --json status              # exact times (epoch milliseconds)"#)]
pub struct StatusArgs {}

/// The event log: every change to the town, who made it, oldest first.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt log                        # the last 1000 events, oldest first
  gt log --since 1h -n 50       # the newest 50 of the last hour
  gt log --subject api-3k9      # one bead's whole story
  gt log -f --subject api/furiosa   # one polecat, live (Ctrl-C ends it)"#)]
pub struct LogArgs {
    /// Only events since T: a duration ago (10m, 2h, 1d) or a UTC time
    /// (2026-11-24 or 2026-11-24T08:00:00Z).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most N events (the newest N).
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub limit: i64,
    /// Only events about this subject: a bead id (its whole story), a polecat
    /// (RIG/NAME), a rig, a convoy or a mail id.
    #[arg(long, value_name = "ID")]
    pub subject: Option<String>,
    /// Keep printing new events as they happen (until interrupted); with --json, one
    /// JSON object per line.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

pub fn status(g: &Global, _args: &StatusArgs) -> Result<()> {
    let mut town = g.town()?;
    crate::town::ingest::ingest_all(&mut town)?;
    let engine = crate::town::status::engine(&town, &probe(&town));
    let s = crate::town::status::status(&town, engine)?;
    if g.json {
        return output::json(&s);
    }
    use output::{Colour, paint};
    let mut out = format!("town {} ({})", s.town, s.town_id);
    out += &format!("\n{}", engine_line(&s.engine));
    out += &format!("\npatrol: {}", patrol_line(&s.patrol));
    if s.mayor_unread > 0 {
        let esc = if s.mayor_unread_escalations > 0 {
            paint(
                &format!(" ({} escalation(s))", s.mayor_unread_escalations),
                Colour::Red,
            )
        } else {
            String::new()
        };
        out += &format!(
            "\nmayor: {} unread message(s){esc}; `gt mail inbox --unread`",
            s.mayor_unread
        );
    }
    if s.breaker_open {
        out += &format!(
            "\n{}: new dispatches are paused; `gt resume` closes it",
            paint("CIRCUIT BREAKER OPEN", Colour::Red)
        );
    }
    for d in &s.drains {
        out += &format!(
            "\n{} {} {}: nothing is dispatched; `gt resume{}` lifts it",
            d.what(),
            paint("drained since", Colour::Yellow),
            output::since(d.since),
            if d.scope == crate::town::drain::TOWN {
                String::new()
            } else {
                format!(" --rig {}", d.scope)
            }
        );
    }
    if let Some(w) = &s.patrol.warning {
        out += &format!(
            "\n{}: {}",
            paint("WARNING", Colour::Yellow),
            output::safe_line(w)
        );
    }
    if !s.stopped_slings.is_empty() {
        out += &format!(
            "\n{}: {} sling(s) stopped before their container started (gt killed?): {}; the next `gt patrol` adopts or undoes them",
            paint("WARNING", Colour::Yellow),
            s.stopped_slings.len(),
            output::safe_line(&s.stopped_slings.join(", "))
        );
    }
    if !s.quiet.is_empty() {
        out += &format!(
            "\n{}: {} agent(s) quiet (no checkpoint, mail or done): {}; `gt peek RIG/NAME` shows what they do",
            paint("PROBLEM", Colour::Red),
            s.quiet.len(),
            output::safe_line(&s.quiet.join(", "))
        );
    }
    for r in &s.remotes_failing {
        out += &format!(
            "\n{}: {}; finished work waits on the host (`gt log` has each try)",
            paint("PROBLEM", Colour::Red),
            output::safe_line(r)
        );
    }
    output::println_out(&out)?;
    if s.rigs.is_empty() {
        return output::println_out("no rigs yet; add one with `gt rig add NAME SOURCE`");
    }
    let mut t = output::Table::new(&[
        "rig", "open", "queued", "active", "done", "failed", "other", "agents",
    ]);
    t.colour(5, |c| (c != "0").then_some(Colour::Red));
    t.colour(7, |c| {
        (c.contains("unverified") || c.contains("only ")).then_some(Colour::Red)
    });
    for r in &s.rigs {
        let n = |k: &str| r.beads.get(k).copied().unwrap_or(0);
        let other = n("escalated") + n("deferred") + n("cancelled");
        let mut agents: Vec<String> = r
            .agents
            .iter()
            .filter(|(k, _)| k.as_str() != "idle")
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let live = ["spawning", "running", "finishing"]
            .iter()
            .map(|k| r.agents.get(*k).copied().unwrap_or(0))
            .sum::<i64>();
        let running = r.agents.get("running").copied().unwrap_or(0);
        match r.containers_running {
            None if live > 0 => agents.push("unverified: engine down".into()),
            // Fewer containers run than agents are recorded running: some have died
            // (patrol records it on its next pass).
            Some(c) if c < running => agents.push(format!("only {c} container(s) running")),
            _ => {}
        }
        if let Some(idle) = r.agents.get("idle") {
            agents.push(format!("{idle} idle"));
        }
        t.row(vec![
            r.name.clone(),
            // Queued beads are open too: counted in their own column, not twice.
            r.open.to_string(),
            r.queued.to_string(),
            (n("hooked") + n("in_progress")).to_string(),
            n("done").to_string(),
            n("failed").to_string(),
            other.to_string(),
            if agents.is_empty() {
                "-".into()
            } else {
                agents.join(", ")
            },
        ]);
    }
    t.print()
}

/// The engine probe read commands use: [`ENGINE_PROBE_TIMEOUT`], or the town's
/// `patrol.engine_timeout` when shorter.
///
/// [`ENGINE_PROBE_TIMEOUT`]: crate::town::status::ENGINE_PROBE_TIMEOUT
pub fn probe(
    town: &crate::town::Town,
) -> impl Fn() -> Result<Box<dyn crate::runtime::Runtime>> + use<> {
    let timeout = crate::town::status::ENGINE_PROBE_TIMEOUT.min(town.config.patrol.engine_timeout);
    let config = town.config.runtime.clone();
    move || crate::runtime::connect_within(&config, timeout)
}

/// "engine: ok, 3 container(s) running", or the engine DOWN and what that means.
pub fn engine_line(e: &crate::town::status::Engine) -> String {
    use output::{Colour, paint};
    match (e.answers, &e.error) {
        (true, _) => format!(
            "engine: {}, {} container(s) of this town running",
            paint("ok", Colour::Green),
            e.containers_running.unwrap_or(0)
        ),
        (false, why) => format!(
            "engine: {} ({}); agent states are as last recorded, not checked",
            paint("DOWN", Colour::Red),
            output::safe_line(why.as_deref().unwrap_or("no answer"))
        ),
    }
}

/// "last pass 4m ago, ok: 2 done", or a failing patrol and its last success.
pub fn patrol_line(p: &crate::town::status::PatrolHealth) -> String {
    use output::{Colour, paint};
    let found = p
        .found
        .as_ref()
        .map(|f| f.summary())
        .unwrap_or_else(|| "?".into());
    let success = match p.last_success {
        Some(at) => format!("last successful pass {} ({found})", output::ago(at)),
        None => "no pass has succeeded yet".into(),
    };
    let mut line = match (p.running, p.last_pass, p.last_pass_failed) {
        (true, _, _) => format!("a pass is running now; {success}"),
        (false, None, _) => paint("never ran", Colour::Yellow),
        (false, Some(at), true) => format!(
            "last pass {} {}: {}; {success}",
            output::ago(at),
            paint("FAILED", Colour::Red),
            output::safe_line(p.failure.as_deref().unwrap_or("?"))
        ),
        (false, Some(at), false) => format!(
            "last pass {}, {}: {found}",
            output::ago(at),
            paint("ok", Colour::Green)
        ),
    };
    if p.last_pass.is_none() {
        line += "; `gt patrol install` runs it every minute";
    }
    line
}

pub fn log(g: &Global, args: &LogArgs) -> Result<()> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let town = g.town()?;
    // Taken before the first read, so nothing committed meanwhile is missed.
    let mark = crate::town::status::log_mark(&town)?;
    let events = crate::town::status::log(&town, since, args.subject.as_deref(), args.limit)?;
    if args.follow {
        return follow(g, &town, events, mark, args.subject.as_deref());
    }
    if g.json {
        return output::json(&events);
    }
    let mut t = output::Table::new(&["time", "actor", "event", "subject", "data"]);
    for e in &events {
        t.row(vec![
            output::time(e.at),
            e.actor.clone(),
            e.kind.clone(),
            e.subject.clone(),
            e.data.to_string(),
        ]);
    }
    t.print()
}

/// Print `first`, then every new event as it is committed, one line each (NDJSON with
/// --json), polling the log; ends on interrupt or a closed pipe.
fn follow(
    g: &Global,
    town: &crate::town::Town,
    first: Vec<crate::state::events::Event>,
    mark: i64,
    subject: Option<&str>,
) -> Result<()> {
    let line = |e: &crate::state::events::Event| -> Result<String> {
        if g.json {
            serde_json::to_string(e).map_err(|err| Error::Other(err.to_string()))
        } else {
            // As the table of `gt log`: event data carries what agents wrote.
            Ok(format!(
                "{}  {}  {}  {}  {}",
                output::time(e.at),
                output::safe_line(&e.actor),
                output::safe_line(&e.kind),
                output::safe_line(&e.subject),
                output::safe_line(&e.data.to_string())
            ))
        }
    };
    let mut last = mark;
    let mut batch = first;
    loop {
        for e in &batch {
            output::println_out(&line(e)?)?;
            last = last.max(e.id);
        }
        if batch.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        batch = crate::town::status::log_after(town, last, subject)?;
    }
}

/// `10m` (ago), `2026-11-24`, `2026-11-24T08:00:00Z` → epoch milliseconds.
pub fn parse_since(s: &str) -> Result<i64> {
    if s.starts_with(|c: char| c.is_ascii_digit()) && !s.contains('-') {
        return crate::util::check_duration(s, std::time::Duration::ZERO)
            .map(|d| crate::util::now_ms().saturating_sub(crate::util::millis(d)))
            .map_err(|why| {
                Error::usage(format!("--since {s:?} {why}"))
                    .with_hint("use e.g. 10m, 2h, 2026-11-24 or 2026-11-24T08:00:00Z")
            });
    }
    crate::util::parse_utc_ms(s).ok_or_else(|| {
        Error::usage(format!(
            "--since {s:?} is neither a duration nor a UTC time"
        ))
        .with_hint("use e.g. 10m, 2h, 2026-11-24 or 2026-11-24T08:00:00Z")
    })
}
