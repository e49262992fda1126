//! `gt status` and `gt log`.

use super::{Global, output};
use crate::error::{Error, Result};

/// The town at a glance: rigs, beads by status, queued beads, agents by state, the
/// mayor's unread mail, the circuit breaker, and whether patrol is running (with a
/// warning when work waits on a patrol that has not run within `patrol.stale_after`).
#[derive(clap::Args, Debug)]
pub struct StatusArgs {}

/// The event log: every change to the town, who made it, oldest first.
#[derive(clap::Args, Debug)]
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
    let s = crate::town::status::status(&town)?;
    if g.json {
        return output::json(&s);
    }
    let mut out = format!("town {} ({})", s.town, s.town_id);
    if s.mayor_unread > 0 {
        out += &format!(
            "\nmayor: {} unread message(s); `gt mail inbox --unread`",
            s.mayor_unread
        );
    }
    if s.breaker_open {
        out += "\nCIRCUIT BREAKER OPEN: new dispatches are paused; `gt resume` closes it";
    }
    for d in &s.drains {
        out += &format!(
            "\n{} drained since {} ({} ago): nothing is dispatched; `gt resume{}` lifts it",
            d.what(),
            crate::util::format_time(d.since),
            crate::util::format_span(crate::util::now_ms() - d.since),
            if d.scope == crate::town::drain::TOWN {
                String::new()
            } else {
                format!(" --rig {}", d.scope)
            }
        );
    }
    let now = crate::util::now_ms();
    out += &match (s.patrol.running, s.patrol.last_pass) {
        (true, _) => "\npatrol: a pass is running now".to_string(),
        (false, Some(at)) => format!(
            "\npatrol: last pass {} ago",
            crate::util::format_span(now - at)
        ),
        (false, None) => "\npatrol: never ran".to_string(),
    };
    if let Some(w) = &s.patrol.warning {
        out += &format!("\nWARNING: {}", output::safe_line(w));
    }
    if !s.stopped_slings.is_empty() {
        out += &format!(
            "\nWARNING: {} sling(s) stopped before their container started (gt killed?): {}; the next `gt patrol` adopts or undoes them",
            s.stopped_slings.len(),
            output::safe_line(&s.stopped_slings.join(", "))
        );
    }
    if !s.quiet.is_empty() {
        out += &format!(
            "\nPROBLEM: {} agent(s) quiet (no checkpoint, mail or done): {}; `gt peek RIG/NAME` shows what they do",
            s.quiet.len(),
            output::safe_line(&s.quiet.join(", "))
        );
    }
    output::println_out(&out)?;
    if s.rigs.is_empty() {
        return output::println_out("no rigs yet; add one with `gt rig add NAME SOURCE`");
    }
    let mut t = output::Table::new(&[
        "rig", "open", "queued", "active", "done", "failed", "other", "agents",
    ]);
    for r in &s.rigs {
        let n = |k: &str| r.beads.get(k).copied().unwrap_or(0);
        let other = n("escalated") + n("deferred") + n("cancelled");
        let agents: Vec<String> = r.agents.iter().map(|(k, v)| format!("{v} {k}")).collect();
        t.row(vec![
            r.name.clone(),
            n("open").to_string(),
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
