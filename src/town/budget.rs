//! Budgets: `defaults.max_cost_per_bead` and `defaults.max_cost_per_day` (USD, from the
//! usage agents report; 0 is no limit). Crossed, they stop new dispatches: a sling says
//! why (exit 2), patrol neither re-dispatches nor dispatches queued work, and the mayor
//! is mailed once (per bead, or per day).

use super::{Town, mail::MAYOR};
use crate::error::{Error, Result};
use crate::state::mail::Mail;
use crate::util::now_ms;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq)]
pub enum Over {
    Bead { spent: f64, limit: f64 },
    Day { spent: f64, limit: f64 },
}

impl Over {
    pub fn message(&self, bead: &str) -> String {
        match self {
            Over::Bead { spent, limit } => format!(
                "bead {bead} has spent ${spent:.4}, over its budget of ${limit:.4} (defaults.max_cost_per_bead)"
            ),
            Over::Day { spent, limit } => format!(
                "agents have spent ${spent:.4} in the last 24 hours, over the daily budget of ${limit:.4} (defaults.max_cost_per_day)"
            ),
        }
    }
}

/// Whether dispatching `bead` now would cross a budget.
pub fn check(town: &Town, bead: &str) -> Result<Option<Over>> {
    let d = &town.config.defaults;
    let conn = town.db.conn();
    let sum = |sql: &str, p: &dyn rusqlite::ToSql| -> Result<f64> {
        conn.query_row(sql, [p], |r| r.get::<_, f64>(0))
            .map_err(|e| town.db_err(e))
    };
    if d.max_cost_per_bead > 0.0 {
        let spent = sum(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM usage WHERE bead = ?1",
            &bead,
        )?;
        if spent >= d.max_cost_per_bead {
            return Ok(Some(Over::Bead {
                spent,
                limit: d.max_cost_per_bead,
            }));
        }
    }
    if d.max_cost_per_day > 0.0 {
        let since = now_ms() - DAY_MS;
        let spent = sum(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM usage WHERE recorded_at >= ?1",
            &since,
        )?;
        if spent >= d.max_cost_per_day {
            return Ok(Some(Over::Day {
                spent,
                limit: d.max_cost_per_day,
            }));
        }
    }
    Ok(None)
}

/// Tell the mayor, once per bead (or per UTC day), that a budget stopped dispatches.
pub fn tell(town: &mut Town, bead: &str, over: &Over) -> Result<()> {
    let id = match over {
        Over::Bead { .. } => format!("budget-{bead}"),
        Over::Day { .. } => format!("budget-day-{}", &crate::util::format_time(now_ms())[..10]),
    };
    let m = Mail::new(
        id,
        "patrol",
        MAYOR,
        format!("[escalation] budget reached: {}", over.message(bead)),
        "No new dispatch starts while the budget is crossed; running agents go on. Raise the \
         limit in gt.toml ([defaults] max_cost_per_bead / max_cost_per_day), or wait (the daily \
         one is a rolling 24 hours). `gt costs` shows the spending."
            .to_string(),
        now_ms(),
    );
    town.db.write(|tx| super::mail::post(tx, &m).map(|_| ()))
}

/// The error a sling over budget returns (exit 2).
pub fn refused(bead: &str, over: &Over) -> Error {
    Error::usage(over.message(bead)).with_hint(
        "raise max_cost_per_bead / max_cost_per_day in gt.toml, or wait; `gt costs` shows the spending",
    )
}
