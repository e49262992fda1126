//! Usage: tokens and cost per dispatch, as the agent's CLI reported them.

use rusqlite::{Connection, params};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Only where the CLI reports it (Claude Code does; Codex does not).
    pub cost_usd: Option<f64>,
}

/// Record a dispatch's usage, `flagged` when its reported cost was clamped. A later
/// reading replaces an earlier one only when it is not less (the output only grows while
/// a dispatch runs; the engine may have let its oldest part go since).
pub fn record(
    conn: &Connection,
    dispatch: i64,
    bead: &str,
    rig: &str,
    u: &Usage,
    flagged: bool,
    at: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO usage (dispatch, bead, rig, input_tokens, output_tokens, cost_usd, recorded_at, flagged)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(dispatch) DO UPDATE SET input_tokens = ?4, output_tokens = ?5, cost_usd = ?6,
           recorded_at = ?7, flagged = ?8
         WHERE ?4 >= usage.input_tokens AND ?5 >= usage.output_tokens
           AND COALESCE(?6, 0) >= COALESCE(usage.cost_usd, 0)",
        params![dispatch, bead, rig, u.input_tokens, u.output_tokens, u.cost_usd, at, flagged],
    )?;
    Ok(())
}

/// One row of `gt costs`: a rig's (or a bead's) totals.
#[derive(Debug, Clone, Serialize)]
pub struct Total {
    pub key: String,
    pub dispatches: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
}

/// Totals per rig (or per bead with `by_bead`), since `since` (epoch ms), for one rig or all.
pub fn totals(
    conn: &Connection,
    rig: Option<&str>,
    since: i64,
    by_bead: bool,
) -> rusqlite::Result<Vec<Total>> {
    let key = if by_bead { "bead" } else { "rig" };
    let mut st = conn.prepare(&format!(
        "SELECT {key}, COUNT(*), SUM(input_tokens), SUM(output_tokens), COALESCE(SUM(cost_usd), 0)
         FROM usage WHERE recorded_at >= ?1 AND (?2 IS NULL OR rig = ?2)
         GROUP BY {key} ORDER BY {key}"
    ))?;
    st.query_map(params![since, rig], |r| {
        Ok(Total {
            key: r.get(0)?,
            dispatches: r.get(1)?,
            input_tokens: r.get(2)?,
            output_tokens: r.get(3)?,
            cost_usd: r.get(4)?,
        })
    })?
    .collect()
}
