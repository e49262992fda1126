//! Budgets: `defaults.max_cost_per_bead` and `defaults.max_cost_per_day` (USD, from the
//! usage agents report; 0 is no limit). Crossed, they stop new dispatches: a sling says
//! why (exit 2), patrol neither re-dispatches nor dispatches queued work, and the mayor
//! is mailed once (per bead, or per rig and day).
//!
//! Until costs come from the wire, the agent's own report is all there is, so a reported
//! cost can only ever stop the rig that reported it: the daily budget is per rig (a rig
//! is refused for its own spend in the last 24 hours, never for another's). It is also
//! bounded when recorded ([`record`]): a dispatch's cost is at most what its output could
//! have cost and at most the caps; a clamped one is flagged (an event, one mail).

use super::{Town, mail::MAYOR};
use crate::error::{Error, Result};
use crate::state::mail::Mail;
use crate::state::usage::Usage;
use crate::util::now_ms;

const DAY_MS: i64 = 86_400_000;

/// The most a dispatch's reported cost can plausibly be per KiB of the output it printed:
/// a model call that costs a dollar prints far more than a KiB (its message, its tool
/// calls and their results, its own usage line). A report above it (and above
/// [`MIN_PLAUSIBLE_USD`]) is clamped to it.
pub const MAX_USD_PER_KIB: f64 = 1.0;
/// What any dispatch may report, however little it printed.
pub const MIN_PLAUSIBLE_USD: f64 = 1.0;

/// Record dispatch `dispatch`'s usage as its output reported it (`output_bytes` of it),
/// bounded: its cost at most [`MAX_USD_PER_KIB`] per KiB of output (or
/// [`MIN_PLAUSIBLE_USD`]) and at most `max_cost_per_dispatch`. A report over a bound is
/// kept as the bound and flagged: a `usage.flagged` event and one mail to the mayor. (A
/// bead is bounded by these per dispatch and its budget: crossed, no dispatch follows.)
pub fn record(
    town: &mut Town,
    dispatch: i64,
    bead: &str,
    rig: &str,
    reported: &Usage,
    output_bytes: u64,
) -> Result<()> {
    let d = &town.config.defaults;
    let mut limits = vec![(
        (output_bytes as f64 / 1024.0 * MAX_USD_PER_KIB).max(MIN_PLAUSIBLE_USD),
        "more than its output could have cost",
    )];
    if d.max_cost_per_dispatch > 0.0 {
        limits.push((
            d.max_cost_per_dispatch,
            "over defaults.max_cost_per_dispatch",
        ));
    }
    let mut kept = reported.clone();
    let mut why = None;
    for (limit, reason) in limits {
        if kept.cost_usd.is_some_and(|c| c > limit) {
            kept.cost_usd = Some(limit);
            why = Some(reason);
        }
    }
    let at = now_ms();
    town.db.write(|tx| {
        crate::state::usage::record(tx, dispatch, bead, rig, &kept, why.is_some(), at)
            .map_err(|e| tx.err(e))?;
        tx.event(
            "usage.recorded",
            bead,
            serde_json::json!({ "dispatch": dispatch, "input_tokens": kept.input_tokens, "output_tokens": kept.output_tokens, "cost_usd": kept.cost_usd }),
        )?;
        let Some(why) = why else {
            return Ok(());
        };
        let (said, kept_usd) = (reported.cost_usd.unwrap_or(0.0), kept.cost_usd.unwrap_or(0.0));
        let m = Mail::new(
            format!("usage-flagged-{dispatch}"),
            "patrol",
            MAYOR,
            format!("[escalation] {rig} reported ${said:.2} on {bead}: {why}; kept ${kept_usd:.2}"),
            format!(
                "Dispatch {dispatch} of bead {bead} (rig {rig}) reported a cost of ${said:.4} in \
                 its output ({output_bytes} bytes): {why}. It is recorded as ${kept_usd:.4} and \
                 flagged: it counts toward bead {bead}'s and rig {rig}'s budgets only (the daily \
                 budget is per rig: it never stops another rig). An agent's output is its own to \
                 write: look at `gt peek --bead {bead}` and `gt log`."
            ),
            at,
        );
        // Once per dispatch (its output is read again at each step of its end).
        if !super::mail::post(tx, &m)? {
            return Ok(());
        }
        tx.event(
            "usage.flagged",
            bead,
            serde_json::json!({
                "dispatch": dispatch, "rig": rig, "reported_cost_usd": said,
                "kept_cost_usd": kept_usd, "output_bytes": output_bytes, "why": why,
            }),
        )
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum Over {
    Bead {
        spent: f64,
        limit: f64,
    },
    /// Rig `rig`'s own spend in the last 24 hours (the daily budget is per rig);
    /// `flagged`: how much of `spent` is its flagged (clamped) usage.
    Day {
        spent: f64,
        limit: f64,
        rig: String,
        flagged: f64,
    },
}

impl Over {
    pub fn message(&self, bead: &str) -> String {
        match self {
            Over::Bead { spent, limit } => format!(
                "bead {bead} has spent ${spent:.4}, over its budget of ${limit:.4} (defaults.max_cost_per_bead)"
            ),
            Over::Day {
                spent,
                limit,
                rig,
                flagged,
            } => {
                let flagged = if *flagged > 0.0 {
                    format!("; ${flagged:.4} of it is rig {rig}'s flagged usage")
                } else {
                    String::new()
                };
                format!(
                    "rig {rig}'s agents have spent ${spent:.4} in the last 24 hours, over the daily budget of ${limit:.4} per rig (defaults.max_cost_per_day; a rig's reported cost stops only that rig){flagged}"
                )
            }
        }
    }
}

/// Whether dispatching `bead` now would cross a budget. The daily one is per rig: it
/// counts the usage of `bead`'s own rig only (flagged or not), so what one rig's agents
/// report never stops another rig.
pub fn check(town: &Town, bead: &str) -> Result<Option<Over>> {
    let d = &town.config.defaults;
    let conn = town.db.conn();
    if d.max_cost_per_bead > 0.0 {
        let spent = conn
            .query_row(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM usage WHERE bead = ?1",
                [bead],
                |r| r.get::<_, f64>(0),
            )
            .map_err(|e| town.db_err(e))?;
        if spent >= d.max_cost_per_bead {
            return Ok(Some(Over::Bead {
                spent,
                limit: d.max_cost_per_bead,
            }));
        }
    }
    if d.max_cost_per_day > 0.0 {
        let rig = crate::state::beads::get(conn, bead)
            .map_err(|e| town.db_err(e))?
            .map(|b| b.rig)
            .unwrap_or_default();
        let since = now_ms() - DAY_MS;
        let (spent, flagged) = conn
            .query_row(
                "SELECT COALESCE(SUM(cost_usd), 0),
                        COALESCE(SUM(CASE WHEN flagged = 1 THEN cost_usd END), 0)
                 FROM usage WHERE recorded_at >= ?1 AND rig = ?2",
                rusqlite::params![since, rig],
                |r| Ok((r.get::<_, f64>(0)?, r.get::<_, f64>(1)?)),
            )
            .map_err(|e| town.db_err(e))?;
        if spent >= d.max_cost_per_day {
            return Ok(Some(Over::Day {
                spent,
                limit: d.max_cost_per_day,
                rig,
                flagged,
            }));
        }
    }
    Ok(None)
}

/// Tell the mayor, once per bead (or per rig and UTC day), that a budget stopped
/// dispatches.
pub fn tell(town: &mut Town, bead: &str, over: &Over) -> Result<()> {
    let id = match over {
        Over::Bead { .. } => format!("budget-{bead}"),
        Over::Day { rig, .. } => format!(
            "budget-day-{}-{rig}",
            &crate::util::format_time(now_ms())[..10]
        ),
    };
    let m = Mail::new(
        id,
        "patrol",
        MAYOR,
        format!("[escalation] budget reached: {}", over.message(bead)),
        "No new dispatch starts while the budget is crossed; running agents go on. Raise the \
         limit in gt.toml ([defaults] max_cost_per_bead / max_cost_per_day), or wait (the daily \
         one is per rig, over a rolling 24 hours). `gt costs --since 1d` shows the spending."
            .to_string(),
        now_ms(),
    );
    town.db.write(|tx| super::mail::post(tx, &m).map(|_| ()))
}

/// The error a sling over budget returns (exit 2).
pub fn refused(bead: &str, over: &Over) -> Error {
    Error::usage(over.message(bead)).with_hint(
        "raise max_cost_per_bead / max_cost_per_day (per rig) in gt.toml, or wait; `gt costs` shows the spending",
    )
}
