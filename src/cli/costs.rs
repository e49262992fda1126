//! `gt costs`: tokens and money the agents spent, as their CLIs reported them.

use super::{Global, output};
use crate::error::Result;

/// Sum the tokens and cost agents reported, per rig (or per bead).
///
/// Cost is known where the CLI reports it (Claude Code's stream-json `result`; Codex
/// reports tokens only).
///
/// Usage is read from each dispatch's whole output when its container ends or is
/// stopped (an agent command that prints `--output-format stream-json` or `codex exec
/// --json`, as the `--agent claude|codex` presets do), and kept even when its
/// transcript cannot be. The output is the agent's to write, so a reported cost is
/// bounded: at most $1 per KiB of output (at least $1) and `defaults.max_cost_per_dispatch`;
/// a cost over a bound is kept as the bound, flagged (`usage.flagged` in `gt log`, one
/// mail to the mayor), and counts toward its own bead's and rig's budgets only:
/// `max_cost_per_day` is per rig, so no rig's reported cost stops another.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt costs                     # every rig, all time
  gt costs --rig api --since 1d
  gt costs --by-bead --json"#)]
pub struct CostsArgs {
    /// Only this rig.
    #[arg(long)]
    pub rig: Option<String>,
    /// Only usage recorded since T: a duration ago (10m, 2h, 1d) or a UTC time.
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// One row per bead instead of per rig.
    #[arg(long)]
    pub by_bead: bool,
}

pub fn run(g: &Global, a: &CostsArgs) -> Result<()> {
    let town = g.town()?;
    let since = a
        .since
        .as_deref()
        .map(super::status::parse_since)
        .transpose()?
        .unwrap_or(0);
    if let Some(r) = &a.rig {
        crate::town::rig::get(&town, r)?;
    }
    let rows = crate::state::usage::totals(town.db.conn(), a.rig.as_deref(), since, a.by_bead)
        .map_err(|e| town.db_err(e))?;
    if g.json {
        return output::json(&rows);
    }
    if rows.is_empty() {
        return output::println_out(
            "no usage recorded yet (agents report it in stream-json or --json output)",
        );
    }
    let mut t = output::Table::new(&[
        if a.by_bead { "bead" } else { "rig" },
        "dispatches",
        "input tokens",
        "output tokens",
        "cost (USD)",
    ]);
    for r in &rows {
        t.row(vec![
            r.key.clone(),
            r.dispatches.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            format!("{:.4}", r.cost_usd),
        ]);
    }
    t.print()
}
