//! Beads: create, list, show, close, edit (with optimistic locking).

use super::Town;
use crate::error::{Error, Result};
use crate::state::beads::{self, Bead, STATUSES, TERMINAL};
use crate::state::{Versioned, agents, cas_update, dispatches, rigs};
use crate::util::{now_ms, random_base36, validate_name};

/// The id prefix of a rig's beads: its name cut to 8 characters.
fn prefix(rig: &str) -> &str {
    let p = &rig[..rig.len().min(8)];
    p.trim_end_matches(['-', '_'])
}

pub fn create(town: &mut Town, rig: &str, title: &str, body: &str) -> Result<Bead> {
    validate_name("rig", rig)?;
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::usage("the bead title is empty"));
    }
    town.db.write(|tx| {
        if rigs::get(tx, rig).map_err(|e| tx.err(e))?.is_none() {
            return Err(Error::not_found(
                format!("rig {rig}"),
                Some("`gt rig list` shows the rigs; `gt rig add` adds one".into()),
            ));
        }
        let id = fresh_id(tx, rig)?;
        let now = now_ms();
        let bead = Bead {
            id,
            rig: rig.to_string(),
            title: title.to_string(),
            body: body.to_string(),
            status: "open".into(),
            queued: false,
            attempts: 0,
            branch: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        beads::insert(tx, &bead).map_err(|e| tx.err(e))?;
        tx.event(
            "bead.created",
            &bead.id,
            serde_json::json!({ "rig": rig, "title": title }),
        )?;
        Ok(bead)
    })
}

/// A short id not yet used: 3 random characters, longer when the short space is busy.
fn fresh_id(tx: &crate::state::Tx, rig: &str) -> Result<String> {
    for len in 3..=8 {
        for _ in 0..8 {
            let id = format!("{}-{}", prefix(rig), random_base36(len));
            if !beads::exists(tx, &id).map_err(|e| tx.err(e))? {
                return Ok(id);
            }
        }
    }
    Err(Error::Other(format!(
        "could not find a free bead id for rig {rig}"
    )))
}

pub fn get(town: &Town, id: &str) -> Result<Bead> {
    validate_name("bead", id)?;
    beads::get(town.db.conn(), id)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| not_found(id))
}

pub fn not_found(id: &str) -> Error {
    Error::not_found(
        format!("bead {id}"),
        Some("`gt bead list` shows the beads of this town".into()),
    )
}

pub fn list(town: &Town, rig: Option<&str>, status: Option<&str>) -> Result<Vec<Bead>> {
    if let Some(r) = rig {
        super::rig::get(town, r)?;
    }
    if let Some(s) = status {
        check_status(s)?;
    }
    beads::list(town.db.conn(), rig, status).map_err(|e| town.db_err(e))
}

fn check_status(s: &str) -> Result<()> {
    if STATUSES.contains(&s) {
        Ok(())
    } else {
        Err(Error::usage(format!("unknown status {s:?}"))
            .with_hint(format!("use one of: {}", STATUSES.join(", "))))
    }
}

/// A bead with what is known about its work: the agent holding it and every dispatch.
#[derive(Debug, serde::Serialize)]
pub struct BeadDetail {
    #[serde(flatten)]
    pub bead: Bead,
    pub agent: Option<String>,
    pub dispatches: Vec<DispatchDetail>,
}

/// A dispatch with its checkpoints: the agent's notes and the done saga's steps, so a
/// bead half way through its hand-over says exactly where it is.
#[derive(Debug, serde::Serialize)]
pub struct DispatchDetail {
    #[serde(flatten)]
    pub dispatch: dispatches::Dispatch,
    /// Its attempt at the bead (1-based, counted as [`attempt_numbers`] counts them);
    /// null for a dispatch that spent none (stopped by a drain or from outside, a host
    /// fault). `id` is the town-wide dispatch id.
    pub attempt: Option<i64>,
    pub checkpoints: Vec<crate::state::checkpoints::Checkpoint>,
}

/// Whether dispatch `d` spent one of its bead's attempts: its container started (that
/// is when sling and patrol raise `beads.attempts`, the count patrol compares with
/// `max_attempts`), and it did not end in a way gt forgives and gives back (a drain or
/// stop, a stop from outside, a fault of the host).
pub fn spent_attempt(d: &dispatches::Dispatch) -> bool {
    d.container_id.is_some()
        && !d.reason.as_deref().is_some_and(|r| {
            r.contains(super::patrol::NOT_AN_ATTEMPT) || crate::util::is_host_fault(r)
        })
}

/// The attempt the bead's current dispatch `d` is, by the one count of attempts used
/// (`beads.attempts`, which `gt bead reopen` sets back to 0): the attempts used, and
/// this one too while its container has not started (the count goes up when it does).
/// `gt top`'s TRY, `gt polecat list` and `gt prime` show it.
pub fn current_attempt(bead: &Bead, d: Option<&dispatches::Dispatch>) -> i64 {
    let starting = d.is_some_and(|d| d.container_id.is_none() && d.ended_at.is_none());
    bead.attempts + i64::from(starting)
}

/// Each of `ds` (the bead's dispatches, oldest first) numbered as its attempt at the
/// bead, or None when it spent none: the count starts again after each `gt bead reopen`,
/// so the latest counted one is the bead's `attempts`.
pub fn attempt_numbers(
    conn: &rusqlite::Connection,
    bead: &str,
    ds: &[dispatches::Dispatch],
) -> rusqlite::Result<Vec<Option<i64>>> {
    let mut st = conn.prepare_cached(
        "SELECT at FROM events WHERE subject = ?1 AND kind = 'bead.reopened' ORDER BY id",
    )?;
    let reopened: Vec<i64> = st
        .query_map([bead], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    let mut since = i64::MIN;
    Ok(ds
        .iter()
        .map(|d| {
            if let Some(at) = reopened.iter().rev().find(|at| **at <= d.started_at)
                && *at > since
            {
                since = *at;
                n = 0;
            }
            let live = d.ended_at.is_none();
            if spent_attempt(d) || (live && d.container_id.is_none()) {
                n += 1;
                Some(n)
            } else {
                None
            }
        })
        .collect())
}

pub fn show(town: &Town, id: &str) -> Result<BeadDetail> {
    let bead = get(town, id)?;
    let conn = town.db.conn();
    let agent = agents::holding(conn, id)
        .map_err(|e| town.db_err(e))?
        .map(|a| a.id);
    let ds = dispatches::for_bead(conn, id).map_err(|e| town.db_err(e))?;
    let numbers = attempt_numbers(conn, id, &ds).map_err(|e| town.db_err(e))?;
    let dispatches = ds
        .into_iter()
        .zip(numbers)
        .map(|(d, attempt)| {
            let checkpoints = crate::state::checkpoints::for_dispatch(conn, d.id)?;
            Ok(DispatchDetail {
                dispatch: d,
                attempt,
                checkpoints,
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| town.db_err(e))?;
    Ok(BeadDetail {
        bead,
        agent,
        dispatches,
    })
}

/// Changes to a bead's own fields. `expect_version` makes the write conditional.
#[derive(Debug, Default)]
pub struct Edit {
    pub title: Option<String>,
    pub body: Option<String>,
    pub expect_version: Option<i64>,
}

pub fn edit(town: &mut Town, id: &str, edit: &Edit) -> Result<Bead> {
    let current = get(town, id)?;
    if let Some(t) = &edit.title
        && t.trim().is_empty()
    {
        return Err(Error::usage("the bead title is empty"));
    }
    let expected = edit.expect_version.unwrap_or(current.version);
    let title = edit.title.clone().unwrap_or(current.title.clone());
    let body = edit.body.clone().unwrap_or(current.body.clone());
    town.db.write(|tx| {
        let row = versioned(id);
        let now = now_ms();
        let version = cas_update(
            tx,
            &row,
            expected,
            &[("title", &title), ("body", &body), ("updated_at", &now)],
        )?;
        tx.event("bead.edited", id, serde_json::json!({ "version": version }))?;
        Ok(())
    })?;
    get(town, id)
}

/// Close a bead that nobody works on: status `cancelled`. A bead an agent holds must
/// have its agent nuked first, so no container works on a closed bead.
/// Reopen a failed, escalated, deferred or cancelled bead: status open, attempts from
/// zero, branch and history kept; its convoys are derived again in the same
/// transaction (a convoy that failed because of it may be open again).
pub fn reopen(town: &mut Town, id: &str, expect_version: Option<i64>) -> Result<Bead> {
    let current = get(town, id)?;
    match current.status.as_str() {
        "failed" | "escalated" | "deferred" | "cancelled" => {}
        "done" => {
            return Err(
                Error::usage(format!("bead {id} is done; it stays done")).with_hint(format!(
                    "for more work on it, create a new bead: `gt bead create --rig {} TITLE`",
                    current.rig
                )),
            );
        }
        other => {
            return Err(Error::conflict(
                format!("bead {id} is {other}, not ended; nothing to reopen"),
                None,
            ));
        }
    }
    let bead = change_status(
        town,
        id,
        expect_version.unwrap_or(current.version),
        "open",
        true,
        "bead.reopened",
        serde_json::json!({ "from": current.status, "attempts_before": current.attempts }),
    )?;
    super::watch::poke(town);
    Ok(bead)
}

/// A human's change of a bead's status, in one transaction: compare-and-swap on the
/// version the caller read, the event, and the bead's convoys derived again.
fn change_status(
    town: &mut Town,
    id: &str,
    expected: i64,
    status: &str,
    fresh_attempts: bool,
    kind: &str,
    data: serde_json::Value,
) -> Result<Bead> {
    town.db.write(|tx| {
        let row = versioned(id);
        let now = now_ms();
        let none: Option<i64> = None;
        let mut set: Vec<(&str, &dyn rusqlite::ToSql)> = vec![
            ("status", &status),
            ("queued_at", &none),
            ("updated_at", &now),
        ];
        if fresh_attempts {
            set.push(("attempts", &0i64));
        }
        cas_update(tx, &row, expected, &set)?;
        tx.event(kind, id, data)?;
        super::convoy::on_bead_changed(tx, id)
    })?;
    get(town, id)
}

pub fn close(town: &mut Town, id: &str, expect_version: Option<i64>) -> Result<Bead> {
    let current = get(town, id)?;
    if TERMINAL.contains(&current.status.as_str()) {
        return Err(Error::conflict(
            format!("bead {id} is already {}", current.status),
            None,
        ));
    }
    if let Some(a) = agents::holding(town.db.conn(), id).map_err(|e| town.db_err(e))? {
        return Err(Error::conflict(
            format!(
                "bead {id} is {} by {} (generation {})",
                current.status, a.id, a.generation
            ),
            Some(format!("stop the agent first: `gt polecat nuke {}`", a.id)),
        ));
    }
    change_status(
        town,
        id,
        expect_version.unwrap_or(current.version),
        "cancelled",
        false,
        "bead.closed",
        serde_json::json!({ "from": current.status }),
    )
}

/// A bead as a versioned row, for `cas_update`.
fn versioned(id: &str) -> Versioned<'_> {
    Versioned {
        table: "beads",
        kind: "bead",
        key_col: "id",
        key: id,
    }
}
