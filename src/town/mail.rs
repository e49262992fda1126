//! Mail on the host: send (idempotent by id), inbox, read, ack, and delivery into
//! agent inboxes (the file first, then the delivered mark; both idempotent).

use super::{HUMAN, Town};
use crate::error::{Error, Result};
use crate::state::{Tx, agents, mail, mail::Mail};
use crate::util::{now_ms, random_base36};

pub const MAYOR: &str = "mayor";

/// Addresses: `mayor`, `human`, or `<rig>/<polecat>` of an existing polecat.
pub fn check_address(conn: &rusqlite::Connection, addr: &str) -> Result<()> {
    if addr == MAYOR || addr == HUMAN {
        return Ok(());
    }
    let (rig, name) = super::polecat::parse_address(addr).map_err(|_| {
        Error::usage(format!("{addr:?} is not a mail address"))
            .with_hint("use `mayor`, `human` or RIG/POLECAT")
    })?;
    if agents::get(conn, &agents::id(&rig, &name))
        .map_err(|e| Error::Other(e.to_string()))?
        .is_none()
    {
        return Err(Error::not_found(
            format!("polecat {addr}"),
            Some("`gt polecat list` shows the polecats".into()),
        ));
    }
    Ok(())
}

/// Mail ids become file names in inboxes: the name rule, a little longer.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid mail id {id:?}: use up to 128 of a-z A-Z 0-9 . _ -"
        )))
    }
}

pub fn new_id() -> String {
    format!("m-{}", random_base36(12))
}

/// Store a message in an open transaction; true when new (the id was unused).
pub fn post(tx: &mut Tx, m: &Mail) -> Result<bool> {
    let new = mail::insert(tx, m).map_err(|e| tx.err(e))?;
    if new {
        tx.event(
            "mail.sent",
            &m.id,
            serde_json::json!({ "from": m.from, "to": m.to, "subject": m.subject }),
        )?;
    }
    Ok(new)
}

#[derive(Debug, serde::Serialize)]
pub struct Sent {
    pub id: String,
    /// False when a message with this id existed: the send was a repeat.
    pub new: bool,
    /// Why delivery into an agent inbox failed after the message was stored. The message
    /// is kept and the next delivery (every patrol) retries it; sending again would only
    /// repeat it.
    pub delivery_pending: Option<String>,
}

pub fn send(
    town: &mut Town,
    from: &str,
    to: &str,
    subject: &str,
    body: &str,
    id: Option<&str>,
) -> Result<Sent> {
    check_address(town.db.conn(), to)?;
    if body.len() > crate::agent::request::MAX_MAIL_BODY {
        return Err(Error::usage(format!(
            "the body is {} bytes; mail bodies are at most 64 KiB",
            body.len()
        )));
    }
    let id = match id {
        Some(i) => {
            check_id(i)?;
            i.to_string()
        }
        None => new_id(),
    };
    let m = Mail::new(id.clone(), from, to, subject, body, now_ms());
    let new = town.db.write(|tx| {
        let new = post(tx, &m)?;
        if !new {
            tx.event("mail.repeat", &m.id, serde_json::json!({ "to": m.to }))?;
        }
        Ok(new)
    })?;
    // Stored is sent: a failed delivery is retried by patrol, never reported as a
    // failed send (a user who retried would send the message twice).
    let delivery_pending = deliver(town).err().map(|e| match e.hint() {
        Some(h) => format!("{e} ({h})"),
        None => e.to_string(),
    });
    Ok(Sent {
        id,
        new,
        delivery_pending,
    })
}

pub fn inbox(town: &Town, addr: &str, unread: bool) -> Result<Vec<Mail>> {
    if addr != MAYOR && addr != HUMAN {
        super::polecat::parse_address(addr)?;
    }
    mail::inbox(town.db.conn(), addr, unread).map_err(|e| town.db_err(e))
}

pub fn get(town: &Town, id: &str) -> Result<Mail> {
    check_id(id)?;
    mail::get(town.db.conn(), id)
        .map_err(|e| town.db_err(e))?
        .ok_or_else(|| {
            Error::not_found(
                format!("mail {id}"),
                Some("`gt mail inbox` lists messages".into()),
            )
        })
}

/// Mark read (or acked); repeating it is a no-op.
pub fn mark(town: &mut Town, id: &str, column: &'static str) -> Result<Mail> {
    get(town, id)?;
    town.db.write(|tx| {
        if mail::mark(tx, id, column, now_ms()).map_err(|e| tx.err(e))? {
            tx.event(
                if column == "read_at" {
                    "mail.read"
                } else {
                    "mail.acked"
                },
                id,
                serde_json::json!({}),
            )?;
        } else {
            tx.event(
                "mail.mark_repeat",
                id,
                serde_json::json!({ "column": column }),
            )?;
        }
        Ok(())
    })?;
    get(town, id)
}

/// Write undelivered agent mail into inboxes: file first (idempotent: same name, same
/// content), then the mark. A crash between the two delivers the same file again.
pub fn deliver(town: &mut Town) -> Result<usize> {
    let pending = mail::undelivered(town.db.conn()).map_err(|e| town.db_err(e))?;
    let mut n = 0;
    for m in pending {
        let Ok((rig, name)) = super::polecat::parse_address(&m.to) else {
            continue;
        };
        let inbox = super::workspace::places(town, &rig, &name)
            .box_dir
            .join("inbox");
        std::fs::create_dir_all(&inbox)
            .map_err(|e| Error::io(format!("creating {}", inbox.display()), e))?;
        let data = serde_json::to_vec_pretty(&m).map_err(|e| Error::Other(e.to_string()))?;
        crate::util::write_atomic(&inbox.join(format!("{}.json", m.id)), &data)?;
        fail::fail_point!("mail.after_file");
        town.db.write(|tx| {
            if mail::mark(tx, &m.id, "delivered_at", now_ms()).map_err(|e| tx.err(e))? {
                tx.event("mail.delivered", &m.id, serde_json::json!({ "to": m.to }))?;
            } else {
                tx.event("mail.deliver_repeat", &m.id, serde_json::json!({}))?;
            }
            Ok(())
        })?;
        n += 1;
    }
    Ok(n)
}

/// A stable id for a message about `what`: the same condition is one message.
pub fn derived_id(prefix: &str, what: &str) -> String {
    // FNV-1a: stable across runs and versions, which std's hasher is not.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in what.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}-{h:016x}")
}
