//! Convoys: batches of beads tracked together with a completion policy. A convoy's
//! state is derived from its beads in the same transaction that changes one of them,
//! and every state change mails the mayor once.

use super::{Town, mail::MAYOR};
use crate::error::{Error, Result};
use crate::state::{Tx, beads, mail::Mail};
use crate::util::{now_ms, random_base36};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "percent")]
pub enum Policy {
    All,
    BestEffort,
    Quorum(u8),
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy> {
        let bad = || {
            Error::usage(format!("unknown convoy policy {s:?}"))
                .with_hint("use all, best-effort or quorum=N% with N from 1 to 100")
        };
        match s {
            "all" => Ok(Policy::All),
            "best-effort" => Ok(Policy::BestEffort),
            _ => {
                let n = s.strip_prefix("quorum=").ok_or_else(bad)?;
                let n: u32 = n
                    .strip_suffix('%')
                    .unwrap_or(n)
                    .parse()
                    .map_err(|_| bad())?;
                if !(1..=100).contains(&n) {
                    return Err(Error::usage(format!("quorum {n}% is outside 1–100%")));
                }
                Ok(Policy::Quorum(n as u8))
            }
        }
    }

    pub fn as_string(self) -> String {
        match self {
            Policy::All => "all".into(),
            Policy::BestEffort => "best-effort".into(),
            Policy::Quorum(n) => format!("quorum={n}%"),
        }
    }

    /// The state of a convoy with these bead statuses. `failed` as soon as the policy
    /// can no longer be met, not only at the end.
    pub fn derive(self, statuses: &[String]) -> &'static str {
        let total = statuses.len();
        let done = statuses.iter().filter(|s| *s == "done").count();
        let terminal = statuses
            .iter()
            .filter(|s| beads::TERMINAL.contains(&s.as_str()))
            .count();
        let lost = terminal - done;
        let active = total - terminal;
        if total == 0 {
            return "open";
        }
        match self {
            Policy::All if lost > 0 => "failed",
            Policy::Quorum(n) if done + active < (total * n as usize).div_ceil(100) => "failed",
            Policy::BestEffort if active == 0 && done == 0 => "failed",
            _ if active > 0 => "open",
            _ if done == total => "landed",
            _ => "partial",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConvoyView {
    pub id: String,
    pub name: String,
    pub policy: String,
    pub state: String,
    pub total: usize,
    pub done: usize,
    /// Done beads whose work is merged on its target (rigs that land work).
    pub merged: usize,
    pub failed: usize,
    pub beads: Vec<ConvoyBead>,
    pub version: i64,
}

#[derive(Debug, Serialize)]
pub struct ConvoyBead {
    pub id: String,
    pub rig: String,
    pub status: String,
    pub title: String,
    /// Its work is merged on its rig's target (false for rigs that only record work).
    pub merged: bool,
}

pub fn create(
    town: &mut Town,
    name: &str,
    bead_ids: &[String],
    policy: &str,
) -> Result<ConvoyView> {
    let policy = Policy::parse(policy)?;
    let name = name.trim();
    if name.is_empty() || name.len() > 80 {
        return Err(Error::usage("a convoy name is 1 to 80 characters"));
    }
    check_beads(town, bead_ids)?;
    let id = town.db.write(|tx| {
        let id = format!("cv-{}", random_base36(5));
        let now = now_ms();
        tx.execute(
            "INSERT INTO convoys (id, name, policy, state, created_at, updated_at) VALUES (?1, ?2, ?3, 'open', ?4, ?4)",
            params![id, name, policy.as_string(), now],
        )
        .map_err(|e| tx.err(e))?;
        for b in bead_ids {
            tx.execute("INSERT OR IGNORE INTO convoy_beads (convoy, bead) VALUES (?1, ?2)", params![id, b]).map_err(|e| tx.err(e))?;
        }
        tx.event("convoy.created", &id, serde_json::json!({ "name": name, "policy": policy.as_string(), "beads": bead_ids }))?;
        refresh(tx, &id)?;
        Ok(id)
    })?;
    view(town, &id)
}

#[derive(Debug, Serialize)]
pub struct Added {
    pub added: Vec<String>,
    /// Beads that were already in the convoy (not added twice).
    pub already: Vec<String>,
    pub convoy: ConvoyView,
}

pub fn add(town: &mut Town, id: &str, bead_ids: &[String]) -> Result<Added> {
    let current = view(town, id)?;
    if current.state == "closed" {
        return Err(Error::conflict(format!("convoy {id} is closed"), None));
    }
    check_beads(town, bead_ids)?;
    let (added, already) = town.db.write(|tx| {
        let (mut added, mut already) = (Vec::new(), Vec::new());
        for b in bead_ids {
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO convoy_beads (convoy, bead) VALUES (?1, ?2)",
                    params![id, b],
                )
                .map_err(|e| tx.err(e))?;
            if n == 1 {
                added.push(b.clone())
            } else {
                already.push(b.clone())
            }
        }
        if !added.is_empty() {
            tx.event(
                "convoy.beads_added",
                id,
                serde_json::json!({ "beads": added }),
            )?;
            refresh(tx, id)?;
        }
        Ok((added, already))
    })?;
    Ok(Added {
        added,
        already,
        convoy: view(town, id)?,
    })
}

fn check_beads(town: &Town, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::usage("name at least one bead"));
    }
    for b in ids {
        super::bead::get(town, b)?;
    }
    Ok(())
}

pub fn close(town: &mut Town, id: &str, force: bool) -> Result<ConvoyView> {
    let v = view(town, id)?;
    if v.state == "closed" {
        return Ok(v);
    }
    if v.state == "open" && !force {
        return Err(Error::conflict(
            format!(
                "convoy {id} is still open ({} of {} beads done)",
                v.done, v.total
            ),
            Some(format!("wait for it, or `gt convoy close {id} --force`")),
        ));
    }
    town.db.write(|tx| {
        tx.execute("UPDATE convoys SET state = 'closed', updated_at = ?2, version = version + 1 WHERE id = ?1", params![id, now_ms()])
            .map_err(|e| tx.err(e))?;
        tx.event("convoy.closed", id, serde_json::json!({ "from": v.state, "forced": force }))
    })?;
    view(town, id)
}

pub fn view(town: &Town, id: &str) -> Result<ConvoyView> {
    let conn = town.db.conn();
    let row: Option<(String, String, String, i64)> = conn
        .query_row(
            "SELECT name, policy, state, version FROM convoys WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(|e| town.db_err(e))?;
    let (name, policy, state, version) = row.ok_or_else(|| {
        Error::not_found(
            format!("convoy {id}"),
            Some("`gt convoy list` shows the convoys".into()),
        )
    })?;
    let mut st = conn
        .prepare_cached(
            &format!("SELECT b.id, b.rig, b.status, b.title, {LANDED_STATUS} = 'done' AND r.merge <> 'off' FROM convoy_beads c JOIN beads b ON b.id = c.bead JOIN rigs r ON r.name = b.rig WHERE c.convoy = ?1 ORDER BY b.created_at, b.id"),
        )
        .map_err(|e| town.db_err(e))?;
    let beads: Vec<ConvoyBead> = st
        .query_map([id], |r| {
            Ok(ConvoyBead {
                id: r.get(0)?,
                rig: r.get(1)?,
                status: r.get(2)?,
                title: r.get(3)?,
                merged: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| town.db_err(e))?;
    let done = beads.iter().filter(|b| b.status == "done").count();
    let merged = beads.iter().filter(|b| b.merged).count();
    let failed = beads
        .iter()
        .filter(|b| beads::TERMINAL.contains(&b.status.as_str()) && b.status != "done")
        .count();
    Ok(ConvoyView {
        id: id.into(),
        name,
        policy,
        state,
        total: beads.len(),
        done,
        merged,
        failed,
        beads,
        version,
    })
}

pub fn list(town: &Town) -> Result<Vec<ConvoyView>> {
    let ids: Vec<String> = {
        let mut st = town
            .db
            .conn()
            .prepare_cached("SELECT id FROM convoys ORDER BY created_at, id")
            .map_err(|e| town.db_err(e))?;
        st.query_map([], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| town.db_err(e))?
    };
    ids.iter().map(|id| view(town, id)).collect()
}

/// Re-derive the state of every convoy holding `bead`; called in the transaction that
/// changed the bead.
pub fn on_bead_changed(tx: &mut Tx, bead: &str) -> Result<()> {
    let convoys: Vec<String> = {
        let mut st = tx
            .prepare_cached("SELECT convoy FROM convoy_beads WHERE bead = ?1")
            .map_err(|e| tx.err(e))?;
        st.query_map([bead], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| tx.err(e))?
    };
    for c in convoys {
        refresh(tx, &c)?;
    }
    Ok(())
}

/// A bead's status as a convoy counts it: a done bead of a rig that lands work counts
/// as `merging` (still on its way) until its latest merge request is merged.
const LANDED_STATUS: &str = "CASE WHEN b.status = 'done' AND r.merge <> 'off' AND COALESCE(
       (SELECT m.state FROM merge_requests m WHERE m.bead = b.id ORDER BY m.id DESC LIMIT 1), '') <> 'merged'
     THEN 'merging' ELSE b.status END";

/// A bead's status as a convoy's policy counts it: as [`LANDED_STATUS`], except that a
/// done bead whose latest merge request recorded no change has nothing on its way (it
/// counts as done, and is still never shown as merged).
const SETTLED_STATUS: &str = "CASE WHEN b.status = 'done' AND r.merge <> 'off' AND COALESCE(
       (SELECT CASE WHEN m.state = 'superseded' AND m.reason LIKE 'no change:%' THEN 'merged' ELSE m.state END
          FROM merge_requests m WHERE m.bead = b.id ORDER BY m.id DESC LIMIT 1), '') <> 'merged'
     THEN 'merging' ELSE b.status END";

fn refresh(tx: &mut Tx, id: &str) -> Result<()> {
    let (policy, state, name, version): (String, String, String, i64) = tx
        .query_row(
            "SELECT policy, state, name, version FROM convoys WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(|e| tx.err(e))?;
    if state == "closed" {
        return Ok(());
    }
    let statuses: Vec<String> = {
        let mut st = tx
            .prepare_cached(&format!("SELECT {SETTLED_STATUS} FROM convoy_beads c JOIN beads b ON b.id = c.bead JOIN rigs r ON r.name = b.rig WHERE c.convoy = ?1"))
            .map_err(|e| tx.err(e))?;
        st.query_map([id], |r| r.get(0))
            .and_then(|r| r.collect())
            .map_err(|e| tx.err(e))?
    };
    let new = Policy::parse(&policy)?.derive(&statuses);
    if new == state {
        return Ok(());
    }
    let now = now_ms();
    tx.execute(
        "UPDATE convoys SET state = ?2, updated_at = ?3, version = version + 1 WHERE id = ?1",
        params![id, new, now],
    )
    .map_err(|e| tx.err(e))?;
    tx.event(
        "convoy.state",
        id,
        serde_json::json!({ "from": state, "to": new }),
    )?;
    let done = statuses.iter().filter(|s| *s == "done").count();
    // One mail per state change: the id carries the convoy's new version, so a change
    // is mailed once, and a convoy that fails again after a reopen is mailed again.
    let m = Mail::new(
        format!("convoy-{id}-{new}-v{}", version + 1),
        "patrol",
        MAYOR,
        format!(
            "convoy {name} ({id}) is {new}: {done} of {} beads landed",
            statuses.len()
        ),
        format!("policy {policy}; was {state}"),
        now,
    );
    super::mail::post(tx, &m).map(|_| ())
}

/// Open beads of a convoy, for `gt sling --convoy`.
pub fn open_beads(town: &Town, id: &str) -> Result<Vec<String>> {
    Ok(view(town, id)?
        .beads
        .into_iter()
        .filter(|b| b.status == "open")
        .map(|b| b.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn policies_derive_states_as_soon_as_they_are_decided() {
        let running = s(&["done", "failed", "in_progress", "open"]);
        assert_eq!(Policy::All.derive(&running), "failed");
        assert_eq!(Policy::BestEffort.derive(&running), "open");
        assert_eq!(Policy::Quorum(75).derive(&running), "open");
        assert_eq!(Policy::Quorum(100).derive(&running), "failed");
        let ended = s(&["done", "failed", "done", "done"]);
        assert_eq!(Policy::BestEffort.derive(&ended), "partial");
        assert_eq!(Policy::Quorum(75).derive(&ended), "partial");
        assert_eq!(Policy::Quorum(76).derive(&ended), "failed");
        assert_eq!(Policy::All.derive(&s(&["done", "done"])), "landed");
        assert_eq!(
            Policy::BestEffort.derive(&s(&["failed", "cancelled"])),
            "failed"
        );
    }

    #[test]
    fn policies_parse_and_reject() {
        assert_eq!(Policy::parse("quorum=75%").unwrap(), Policy::Quorum(75));
        assert_eq!(Policy::parse("quorum=100").unwrap(), Policy::Quorum(100));
        for bad in ["most", "quorum=0%", "quorum=101%", "quorum=x%"] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }
}
