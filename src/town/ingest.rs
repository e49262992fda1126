//! Ingestion of agent outboxes. A request is applied only when its agent, generation
//! and token match the agent's current dispatch; its id goes into `requests` in the same
//! transaction as its effect, so a file read twice has one effect. Everything else is
//! recorded as an event and moved to `outbox/rejected/`, never applied.

use super::{Town, mail::MAYOR};
use crate::agent::request::{Body, MAX_MAIL_BODY, MAX_REQUEST_BYTES, Request};
use crate::error::{Error, Result};
use crate::state::{Tx, agents, checkpoints, dispatches, mail::Mail};
use crate::untrusted::{Dir, Refused};
use crate::util::now_ms;
use rusqlite::OptionalExtension;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Requests applied per transaction: one fsync for many requests.
const BATCH: usize = 1000;

#[derive(Debug, Default, serde::Serialize)]
pub struct Ingested {
    pub applied: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Agents whose done request was applied: their sagas run next.
    pub finishing: Vec<String>,
}

/// How long a host command that only reads waits for the write lock to apply pending
/// agent requests, before it shows what it can read (plain reads never wait in WAL mode).
pub const READ_WAIT: Duration = Duration::from_millis(250);

/// Ingest every outbox of the town.
///
/// A patrol pass (its writes fenced by the lease) must apply every request and waits
/// for the write lock as long as any writer. A read command only wants a fresh picture:
/// it waits at most `READ_WAIT`, and when another process holds the write lock longer
/// it applies nothing more and warns how many requests the picture is missing.
pub fn ingest_all(town: &mut Town) -> Result<Ingested> {
    let mut total = Ingested::default();
    let outboxes = outboxes(&town.root.join("agents"));
    if town.db.is_read_only() {
        // Reading is still useful; say plainly that the picture may be behind.
        warn_pending(&outboxes, "the town database is read-only for this user");
        return Ok(total);
    }
    let patient = town.db.is_fenced();
    if !patient {
        town.db.set_busy_timeout(READ_WAIT)?;
    }
    let mut result = Ok(());
    for (rig, name, dir) in &outboxes {
        result = ingest_outbox(town, rig, name, dir, &mut total);
        if result.is_err() {
            break;
        }
    }
    if !patient {
        town.db.set_busy_timeout(crate::state::BUSY_TIMEOUT)?;
    }
    match result {
        Err(Error::Busy { .. }) if !patient => {
            warn_pending(
                &outboxes,
                "another process holds the town database's write lock",
            );
            Ok(total)
        }
        other => other.map(|()| total),
    }
}

/// Ingest one agent's outbox now: patrol's last look before it records the agent dead,
/// so a done written after the pass's own ingest, just before its container ended, is
/// applied instead of being mistaken for an ending without done.
pub fn ingest_agent(town: &mut Town, rig: &str, name: &str) -> Result<Ingested> {
    let mut total = Ingested::default();
    let dir = super::workspace::places(town, rig, name).outbox;
    ingest_outbox(town, rig, name, &dir, &mut total)?;
    Ok(total)
}

/// The warning of a read command that could not apply what agents asked for.
fn warn_pending(outboxes: &[(String, String, PathBuf)], why: &str) {
    let pending: usize = outboxes
        .iter()
        .filter_map(|(_, _, dir)| std::fs::read_dir(dir).ok())
        .flat_map(|d| d.flatten())
        .filter(|f| f.path().extension().is_some_and(|x| x == "json"))
        .count();
    if pending > 0 {
        eprintln!(
            "warning: {pending} agent request(s) not applied: {why}, so what follows may be behind"
        );
    }
}

/// Every agent mailbox's outbox under `base` (`agents/<rig>/<polecat>/outbox`), with its
/// rig and polecat names.
fn outboxes(base: &Path) -> Vec<(String, String, PathBuf)> {
    let entries = |p: &Path| -> Vec<std::fs::DirEntry> {
        std::fs::read_dir(p)
            .map(|d| d.flatten().collect())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for rig in entries(base) {
        let Some(r) = rig.file_name().to_str().map(String::from) else {
            continue;
        };
        for name in entries(&rig.path()) {
            if let Some(n) = name.file_name().to_str().map(String::from) {
                out.push((r.clone(), n, name.path().join("outbox")));
            }
        }
    }
    out
}

/// Request files read from one outbox in one pass; the rest wait for the next pass.
pub const MAX_FILES_PER_PASS: usize = 2000;
/// Bytes read from one outbox in one pass; the rest wait for the next pass.
pub const MAX_BYTES_PER_PASS: u64 = 16 << 20;
/// Requests one dispatch may have applied; later ones are rejected (reported once).
pub const MAX_REQUESTS_PER_DISPATCH: i64 = 10_000;
/// Refused requests reported (event and kept copy) per dispatch; later ones are dropped.
pub const MAX_REJECTED_PER_DISPATCH: i64 = 100;
/// Escalations of one dispatch mailed to the mayor; later ones are logged only.
pub const MAX_ESCALATIONS_PER_DISPATCH: i64 = 10;
/// Checkpoint and done notes, in bytes.
pub const MAX_NOTE: usize = 4 << 10;
/// Mail and escalation subjects, in bytes.
pub const MAX_SUBJECT: usize = crate::town::mail::MAX_SUBJECT;

enum Parsed {
    Ok(Request, String, Vec<u8>),
    Bad(String, String, Vec<u8>),
}

fn ingest_outbox(
    town: &mut Town,
    rig: &str,
    name: &str,
    outbox: &Path,
    total: &mut Ingested,
) -> Result<()> {
    let dir = match Dir::open(outbox) {
        Ok(d) => d,
        Err(Refused::Missing) => return Ok(()),
        Err(e) => {
            // The mount point itself is host-made; anything else is this agent's doing.
            tracing::warn!("outbox of {rig}/{name} not read: {e}");
            return Ok(());
        }
    };
    let mut parsed = Vec::new();
    let mut bytes = 0u64;
    let entries = dir.entries(MAX_FILES_PER_PASS * 4).unwrap_or_default();
    for e in entries {
        // Only `<id>.json` names are requests; temp files, `ending`, `read/` are not.
        let Some(stem) = e.name.strip_suffix(".json") else {
            continue;
        };
        if e.name.starts_with('.') || crate::town::mail::check_id(stem).is_err() {
            continue;
        }
        if parsed.len() >= MAX_FILES_PER_PASS || bytes >= MAX_BYTES_PER_PASS {
            break; // the next pass takes the rest
        }
        if e.is_dir {
            // Not a request. Reported once, when it can go; a non-empty one is left
            // alone and never reported again (no event per pass, forever).
            if dir.remove_dir(&e.name).unwrap_or(false) {
                parsed.push(Parsed::Bad(
                    "a directory, not a request file".into(),
                    e.name.clone(),
                    Vec::new(),
                ));
            }
            continue;
        }
        let p = parse(&dir, &e.name);
        bytes += match &p {
            Parsed::Ok(_, _, b) | Parsed::Bad(_, _, b) => b.len() as u64,
        };
        parsed.push(p);
    }
    if parsed.is_empty() {
        return Ok(());
    }
    // Oldest first, so a checkpoint written before done is applied before it.
    parsed.sort_by_key(|p| match p {
        Parsed::Ok(r, ..) => (r.created_at, r.id.clone()),
        Parsed::Bad(..) => (i64::MIN, String::new()),
    });
    let agent_id = agents::id(rig, name);
    let rejected_dir = super::workspace::places(town, rig, name).rejected;
    // The town's secret values, read before the transaction: what an agent writes is
    // stored (and mailed on, into another container) with each replaced by its name.
    let secrets = super::secret::Redactor::of(town);
    for chunk in parsed.chunks(BATCH) {
        let mut done_files = Vec::new();
        let mut rejected_files: Vec<(&str, &[u8])> = Vec::new();
        let mut dropped_files: Vec<&str> = Vec::new();
        let mut finishing = false;
        let (applied, dups) = town.db.write_as(&agent_id, |tx| {
            let mut applied = 0;
            let mut dups = 0;
            // Rejections are reported up to a cap per dispatch; past it, junk is dropped
            // with one event, so an agent cannot grow the town's history without end.
            let mut rejections = rejections_this_dispatch(tx, &agent_id)?;
            let mut refuse = |tx: &mut Tx, file: &'_ str, why: &str| -> Result<bool> {
                rejections += 1;
                if rejections <= MAX_REJECTED_PER_DISPATCH {
                    reject(tx, &agent_id, file, why)?;
                    return Ok(true);
                }
                if rejections == MAX_REJECTED_PER_DISPATCH + 1 {
                    tx.event(
                        "requests.capped",
                        &agent_id,
                        serde_json::json!({ "after": MAX_REJECTED_PER_DISPATCH, "note": "later refused requests of this dispatch are dropped unreported" }),
                    )?;
                }
                Ok(false)
            };
            for p in chunk {
                match p {
                    Parsed::Bad(why, file, data) => {
                        if refuse(tx, file, why)? {
                            rejected_files.push((file, data));
                        } else {
                            dropped_files.push(file);
                        }
                    }
                    Parsed::Ok(req, file, data) => match apply(tx, &agent_id, req, &secrets)? {
                        Outcome::Applied { done } => {
                            applied += 1;
                            finishing |= done;
                            done_files.push(file.as_str());
                        }
                        Outcome::Duplicate => {
                            dups += 1;
                            done_files.push(file.as_str());
                        }
                        Outcome::Rejected(why) => {
                            if refuse(tx, file, &why)? {
                                rejected_files.push((file, data));
                            } else {
                                dropped_files.push(file);
                            }
                        }
                    },
                }
            }
            tx.event(
                "requests.ingested",
                &agent_id,
                serde_json::json!({ "applied": applied, "duplicates": dups, "rejected": rejected_files.len() }),
            )?;
            Ok((applied, dups))
        })?;
        fail::fail_point!("ingest.after_commit");
        for f in done_files.iter().chain(&dropped_files) {
            let _ = dir.remove(f);
        }
        // Refused requests are kept for a human where the agent cannot reach them: a copy
        // of the bytes read, written by the host; the agent's entry is unlinked.
        for (f, data) in &rejected_files {
            if std::fs::create_dir_all(&rejected_dir).is_ok() {
                let _ = crate::util::write_atomic(&rejected_dir.join(f), data);
            }
            let _ = dir.remove(f);
        }
        total.applied += applied;
        total.duplicates += dups;
        total.rejected += rejected_files.len();
        if finishing && !total.finishing.contains(&agent_id) {
            total.finishing.push(agent_id.clone());
        }
    }
    Ok(())
}

/// Requests of `agent` refused since its current dispatch started (all of them when it
/// has none).
fn rejections_this_dispatch(tx: &mut Tx, agent: &str) -> Result<i64> {
    let since: i64 = tx
        .query_row(
            "SELECT COALESCE((SELECT d.started_at FROM agents a JOIN dispatches d ON d.id = a.dispatch WHERE a.id = ?1), 0)",
            [agent],
            |r| r.get(0),
        )
        .map_err(|e| tx.err(e))?;
    tx.query_row(
        "SELECT COUNT(*) FROM events WHERE subject = ?1 AND kind = 'request.rejected' AND at >= ?2",
        rusqlite::params![agent, since],
        |r| r.get(0),
    )
    .map_err(|e| tx.err(e))
}

fn parse(dir: &Dir, file: &str) -> Parsed {
    let data = match dir.read(file, MAX_REQUEST_BYTES) {
        Ok(d) => d,
        Err(Refused::TooLarge { size, .. }) => {
            return Parsed::Bad(
                format!("{size} bytes, over the 1 MiB limit"),
                file.into(),
                Vec::new(),
            );
        }
        Err(e) => return Parsed::Bad(format!("unreadable: {e}"), file.into(), Vec::new()),
    };
    match serde_json::from_slice::<Request>(&data) {
        Ok(r) => Parsed::Ok(r, file.into(), data),
        Err(e) => Parsed::Bad(format!("malformed request: {e}"), file.into(), data),
    }
}

fn reject(tx: &mut Tx, agent: &str, file: &str, why: &str) -> Result<()> {
    tracing::warn!("rejected request {file} of {agent}: {why}");
    tx.event(
        "request.rejected",
        agent,
        serde_json::json!({ "file": file, "reason": why }),
    )
}

/// Why a request's fields are out of bounds, if they are: object ids are 40 hex digits,
/// notes and subjects have caps (bodies are checked where they are used).
fn invalid(body: &Body) -> Option<String> {
    let head_ok = |h: &Option<String>| h.as_deref().is_none_or(|h| crate::untrusted::is_hex(h, 40));
    let too_long = |what: &str, s: &str, max: usize| {
        (s.len() > max).then(|| format!("{what} of {} bytes is over {max}", s.len()))
    };
    match body {
        Body::Checkpoint { note, head } | Body::Done { note, head, .. } => {
            if !head_ok(head) {
                return Some("head is not a 40-digit hex commit id".into());
            }
            too_long("note", note, MAX_NOTE)
        }
        Body::Mail { subject, .. } | Body::Escalate { subject, .. } => {
            too_long("subject", subject, MAX_SUBJECT)
        }
        Body::Read { mail_id } | Body::Ack { mail_id } => crate::town::mail::check_id(mail_id)
            .err()
            .map(|e| e.to_string()),
    }
}

enum Outcome {
    Applied { done: bool },
    Duplicate,
    Rejected(String),
}

/// Whether a done of `dispatch` has been applied: the dispatch is handed over, and
/// nothing its agent writes after it (mail, checkpoints, another done) is applied.
fn done_applied(tx: &mut Tx, dispatch: i64) -> Result<bool> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM requests WHERE dispatch = ?1 AND kind = 'done' LIMIT 1",
            [dispatch],
            |_| Ok(()),
        )
        .optional()
        .map_err(|e| tx.err(e))?
        .is_some())
}

/// A subject an agent wrote, as it is stored: a leading `[...]` tag (`[escalation]`,
/// the form of gt's own notices) is quoted, so an agent's mail never passes for one of
/// gt's; `gt escalate` is how an agent escalates.
pub fn neutral_subject(subject: &str) -> String {
    if subject.trim_start().starts_with('[') {
        format!("(mail) {subject}")
    } else {
        subject.to_string()
    }
}

fn apply(
    tx: &mut Tx,
    outbox_owner: &str,
    req: &Request,
    secrets: &super::secret::Redactor,
) -> Result<Outcome> {
    if req.agent != outbox_owner {
        return Ok(Outcome::Rejected(format!(
            "request in {outbox_owner}'s outbox claims to be from {}",
            req.agent
        )));
    }
    if crate::town::mail::check_id(&req.id).is_err() {
        return Ok(Outcome::Rejected(format!("bad request id {:?}", req.id)));
    }
    let exists = tx
        .query_row(
            "SELECT 1 FROM requests WHERE id = ?1",
            [&req.id],
            |_| Ok(()),
        )
        .optional()
        .map_err(|e| tx.err(e))?
        .is_some();
    if exists {
        return Ok(Outcome::Duplicate);
    }
    let Some(agent) = agents::get(tx, outbox_owner).map_err(|e| tx.err(e))? else {
        return Ok(Outcome::Rejected(format!("no agent {outbox_owner}")));
    };
    let dispatch = match agent.dispatch {
        Some(d) => dispatches::get(tx, d).map_err(|e| tx.err(e))?,
        None => None,
    };
    let Some(dispatch) =
        dispatch.filter(|d| d.generation == agent.generation && agent.bead.is_some())
    else {
        return Ok(Outcome::Rejected(format!(
            "{outbox_owner} has no current dispatch"
        )));
    };
    if req.generation != agent.generation {
        return Ok(Outcome::Rejected(format!(
            "stale generation {} (current {})",
            req.generation, agent.generation
        )));
    }
    if req.token != dispatch.token {
        return Ok(Outcome::Rejected(
            "wrong token for the current dispatch".into(),
        ));
    }
    if let Some(why) = invalid(&req.body) {
        return Ok(Outcome::Rejected(why));
    }
    // After its done the dispatch is handed over: only marking its mail read or acked
    // is still taken (a done saga must not take a commit, mail or note made after it).
    let marks = matches!(req.body, Body::Read { .. } | Body::Ack { .. });
    if !marks && (agent.state == "finishing" || done_applied(tx, dispatch.id)?) {
        return Ok(Outcome::Rejected(format!(
            "{} request after this dispatch's done",
            req.body.kind()
        )));
    }
    let count: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM requests WHERE dispatch = ?1",
            [dispatch.id],
            |r| r.get(0),
        )
        .map_err(|e| tx.err(e))?;
    if count >= MAX_REQUESTS_PER_DISPATCH {
        return Ok(Outcome::Rejected(format!(
            "over {MAX_REQUESTS_PER_DISPATCH} requests for one dispatch"
        )));
    }
    let now = now_ms();
    let bead = dispatch.bead.clone();
    let mut done = false;
    match &req.body {
        Body::Checkpoint { note, head } => {
            let note = &secrets.redact(note);
            checkpoints::insert(
                tx,
                dispatch.id,
                &bead,
                "note",
                Some(note),
                head.as_deref(),
                now,
            )
            .map_err(|e| tx.err(e))?;
            tx.event(
                "checkpoint",
                &bead,
                serde_json::json!({ "agent": agent.id, "note": note, "head": head }),
            )?;
        }
        Body::Mail {
            to,
            subject,
            body,
            mail_id,
        } => {
            if body.len() > MAX_MAIL_BODY {
                return Ok(Outcome::Rejected(format!(
                    "mail body of {} bytes is over 64 KiB",
                    body.len()
                )));
            }
            if let Err(e) = crate::town::mail::check_address(tx, to) {
                return Ok(Outcome::Rejected(e.to_string()));
            }
            // An id the agent chose lives in its own namespace: it cannot take the id of
            // a system notice (`done-7`) or another sender's message.
            let id = match mail_id {
                Some(i) => format!("{}.{}.{i}", agent.rig, agent.name),
                None => format!("r-{}", req.id),
            };
            if crate::town::mail::check_id(&id).is_err() {
                return Ok(Outcome::Rejected(format!("bad mail id {mail_id:?}")));
            }
            // One sender may not fill another's inbox (and with it its `gt prime`).
            let stored = crate::state::mail::get(tx, &id)
                .map_err(|e| tx.err(e))?
                .is_some();
            if !stored && let Some(full) = crate::town::mail::over_cap(tx, &agent.id, to)? {
                return Ok(Outcome::Rejected(full.to_string()));
            }
            let m = Mail::new(
                id,
                agent.id.clone(),
                to.clone(),
                neutral_subject(&secrets.redact(subject)),
                secrets.redact(body),
                now,
            );
            crate::town::mail::post(tx, &m)?;
        }
        Body::Escalate { subject, body } => {
            let (subject, body) = (&secrets.redact(subject), &secrets.redact(body));
            if body.len() > MAX_MAIL_BODY {
                return Ok(Outcome::Rejected(format!(
                    "escalation body of {} bytes is over 64 KiB",
                    body.len()
                )));
            }
            // The mayor's inbox is shared by every agent and by patrol's own notices:
            // one dispatch gets a few escalations there, then one notice that it
            // sent more (each later one is in `gt log`, none is lost).
            let sent: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM requests WHERE dispatch = ?1 AND kind = 'escalate'",
                    [dispatch.id],
                    |r| r.get(0),
                )
                .map_err(|e| tx.err(e))?;
            if sent >= MAX_ESCALATIONS_PER_DISPATCH {
                tx.event(
                    "escalation.capped",
                    &bead,
                    serde_json::json!({ "agent": agent.id, "dispatch": dispatch.id, "subject": subject }),
                )?;
                if sent == MAX_ESCALATIONS_PER_DISPATCH {
                    let m = Mail::new(
                        format!("esc-capped-{}", dispatch.id),
                        "patrol",
                        MAYOR,
                        format!(
                            "[escalation] {} escalates more than {MAX_ESCALATIONS_PER_DISPATCH} times on {bead}",
                            agent.id
                        ),
                        format!(
                            "Its later escalations in this dispatch are not mailed; `gt log` has each \
                             (escalation.capped). `gt peek {}` shows what it does; `gt polecat nuke {}` stops it.",
                            agent.id, agent.id
                        ),
                        now,
                    );
                    crate::town::mail::post(tx, &m)?;
                }
                tx.execute(
                    "INSERT INTO requests (id, agent, dispatch, kind, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![req.id, agent.id, dispatch.id, req.body.kind(), now],
                )
                .map_err(|e| tx.err(e))?;
                return Ok(Outcome::Applied { done: false });
            }
            if let Some(full) = crate::town::mail::over_cap(tx, &agent.id, MAYOR)? {
                return Ok(Outcome::Rejected(full.to_string()));
            }
            let m = Mail::new(
                format!("esc-{}", req.id),
                agent.id.clone(),
                MAYOR,
                format!("[escalation] {}: {subject}", agent.id),
                format!("bead {bead}\n\n{body}"),
                now,
            );
            crate::town::mail::post(tx, &m)?;
        }
        Body::Read { mail_id } | Body::Ack { mail_id } => {
            let col = if matches!(req.body, Body::Read { .. }) {
                "read_at"
            } else {
                "acked_at"
            };
            let mine = crate::state::mail::get(tx, mail_id)
                .map_err(|e| tx.err(e))?
                .is_some_and(|m| m.to == agent.id);
            if !mine {
                return Ok(Outcome::Rejected(format!(
                    "mail {mail_id} is not addressed to {}",
                    agent.id
                )));
            }
            crate::state::mail::mark(tx, mail_id, col, now).map_err(|e| tx.err(e))?;
        }
        Body::Done { status, note, head } => {
            let note = &secrets.redact(note);
            let data = serde_json::json!({ "status": status, "note": note }).to_string();
            checkpoints::insert(
                tx,
                dispatch.id,
                &bead,
                "requested",
                Some(&data),
                head.as_deref(),
                now,
            )
            .map_err(|e| tx.err(e))?;
            tx.execute(
                "UPDATE agents SET state = 'finishing', updated_at = ?2, version = version + 1 WHERE id = ?1 AND state <> 'finishing'",
                rusqlite::params![agent.id, now],
            )
            .map_err(|e| tx.err(e))?;
            tx.event(
                "done.requested",
                &bead,
                serde_json::json!({ "agent": agent.id, "status": status, "note": note }),
            )?;
            done = true;
        }
    }
    tx.execute(
        "INSERT INTO requests (id, agent, dispatch, kind, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![req.id, agent.id, dispatch.id, req.body.kind(), now],
    )
    .map_err(|e| tx.err(e))?;
    Ok(Outcome::Applied { done })
}

#[cfg(test)]
mod tests {
    use super::neutral_subject;
    use crate::state::mail::Mail;
    use crate::town::mail::MailKind;

    #[test]
    fn an_agents_tagged_subject_is_quoted_and_stays_a_message() {
        for s in ["[escalation] budget reached", "  [notice] x", "[anything]"] {
            let q = neutral_subject(s);
            assert!(!q.trim_start().starts_with('['), "{q}");
            assert!(q.ends_with(s), "{q}");
            let m = Mail::new("r-1", "api/furiosa", "mayor", q, "b", 0);
            assert_eq!(MailKind::of(&m), MailKind::Message);
        }
        assert_eq!(neutral_subject("hello [x]"), "hello [x]");
    }

    #[test]
    fn only_gt_escalate_makes_an_agents_escalation() {
        let forged = Mail::new("r-1", "api/furiosa", "mayor", "[escalation] x", "b", 0);
        assert_eq!(MailKind::of(&forged), MailKind::Message);
        let real = Mail::new("esc-r1", "api/furiosa", "mayor", "[escalation] x", "b", 0);
        assert_eq!(MailKind::of(&real), MailKind::Escalation);
        let patrol = Mail::new("p-1", "patrol", "mayor", "[escalation] x", "b", 0);
        assert_eq!(MailKind::of(&patrol), MailKind::Escalation);
    }
}
