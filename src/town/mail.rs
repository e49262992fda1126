//! Mail on the host: send (idempotent by id), inbox (filtered by kind and sender), read,
//! ack (one or all), and delivery: into agent inboxes (the file first, then the delivered
//! mark; both idempotent), and for rigs with `digest` on, their done notices folded into
//! one digest mail to the mayor per delivery (each patrol pass delivers).

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

/// Unread messages one sender may have in one inbox; more are refused until the
/// recipient reads some. An agent's inbox is inlined into its `gt prime`: no other
/// agent (of its rig or another) may fill it.
pub const MAX_UNREAD_PER_SENDER: i64 = 50;

/// Mail subjects, in bytes (one line in an inbox listing and in `gt prime`).
pub const MAX_SUBJECT: usize = 256;

/// Why `from` may not put one more message into `to`'s inbox, if it may not: it has
/// `MAX_UNREAD_PER_SENDER` there unread. A person writing to the mayor or to
/// themselves is never refused.
pub fn over_cap(conn: &rusqlite::Connection, from: &str, to: &str) -> Result<Option<Error>> {
    if from == HUMAN && (to == MAYOR || to == HUMAN) {
        return Ok(None);
    }
    let n = mail::unread_from(conn, from, to).map_err(|e| Error::Other(e.to_string()))?;
    if n < MAX_UNREAD_PER_SENDER {
        return Ok(None);
    }
    Ok(Some(
        Error::usage(format!(
            "{to} already has {n} unread messages from {from}, the most one sender may \
             have in one inbox: no more are taken until {to} reads some"
        ))
        .with_hint(format!(
            "`gt mail inbox --as {to} --from {from}` lists them; \
             `gt mail ack --all --as {to} --from {from}` files them away"
        )),
    ))
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
    if subject.len() > MAX_SUBJECT {
        return Err(Error::usage(format!(
            "the subject is {} bytes; subjects are at most {MAX_SUBJECT}",
            subject.len()
        ))
        .with_hint("put the rest in the body (-m)"));
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
        // A repeat is a repeat (the message is stored already), never a refusal.
        let stored = mail::get(tx, &m.id).map_err(|e| tx.err(e))?.is_some();
        if !stored && let Some(full) = over_cap(tx, from, to)? {
            return Err(full);
        }
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

/// What a message is, for a person sorting an inbox. Derived from the message, never
/// stored: an escalation's subject starts with `[escalation]` (patrol's and an agent's
/// `gt escalate`, whose id is `esc-…`; an agent's `gt mail send` is never one, its
/// subject's tag is quoted when it is taken in, and its id is never `esc-…`); a notice is what gt itself says (done notices `done-N`, digests, and
/// anything sent by patrol: quiet agents, convoys); a message is what a person or an
/// agent wrote with `gt mail send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MailKind {
    Escalation,
    Notice,
    Message,
}

impl MailKind {
    pub fn of(m: &Mail) -> MailKind {
        // An agent (a `rig/polecat` sender) escalates only through `gt escalate`.
        let from_agent = m.from.contains('/');
        if m.subject.starts_with("[escalation]") && (!from_agent || m.id.starts_with("esc-")) {
            MailKind::Escalation
        } else if m.from == super::patrol::ACTOR
            || m.id.starts_with("done-")
            || m.id.starts_with(DIGEST_PREFIX)
        {
            MailKind::Notice
        } else {
            MailKind::Message
        }
    }
}

/// Which messages of an inbox: all by default.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only those not read yet.
    pub unread: bool,
    /// Only those from this sender (an address, or `patrol`).
    pub from: Option<String>,
    /// Only those of this kind.
    pub kind: Option<MailKind>,
}

impl Filter {
    pub fn keeps(&self, m: &Mail) -> bool {
        (!self.unread || m.read.is_none())
            && self.from.as_deref().is_none_or(|f| m.from == f)
            && self.kind.is_none_or(|k| MailKind::of(m) == k)
    }
}

/// An inbox entry: the message and its kind.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub mail: Mail,
    pub kind: MailKind,
}

/// `addr`'s messages that `filter` keeps, oldest first.
pub fn inbox(town: &Town, addr: &str, filter: &Filter) -> Result<Vec<Listed>> {
    if addr != MAYOR && addr != HUMAN {
        super::polecat::parse_address(addr)?;
    }
    Ok(mail::inbox(town.db.conn(), addr, filter.unread)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|m| filter.keeps(m))
        .map(|mail| Listed {
            kind: MailKind::of(&mail),
            mail,
        })
        .collect())
}

/// Acknowledge (and mark read) every message of `addr`'s inbox that `filter` keeps and
/// that is not acked yet, in one transaction; returns their ids.
pub fn ack_all(town: &mut Town, addr: &str, filter: &Filter) -> Result<Vec<String>> {
    let ids: Vec<String> = inbox(town, addr, filter)?
        .into_iter()
        .filter(|l| l.mail.acked.is_none())
        .map(|l| l.mail.id)
        .collect();
    if ids.is_empty() {
        return Ok(ids);
    }
    town.db.write(|tx| {
        let now = now_ms();
        for id in &ids {
            mail::mark(tx, id, "read_at", now).map_err(|e| tx.err(e))?;
            mail::mark(tx, id, "acked_at", now).map_err(|e| tx.err(e))?;
        }
        tx.event(
            "mail.acked_all",
            addr,
            serde_json::json!({ "ids": ids, "kind": filter.kind, "from": filter.from }),
        )
    })?;
    Ok(ids)
}

pub fn get(town: &Town, id: &str) -> Result<Mail> {
    check_id(id)?;
    if let Some(m) = mail::get(town.db.conn(), id).map_err(|e| town.db_err(e))? {
        return Ok(m);
    }
    let hint = match folded_into(town, id)? {
        Some(digest) => format!("it was folded into the digest {digest}: `gt mail read {digest}`"),
        None => "`gt mail inbox` lists messages".into(),
    };
    Err(Error::not_found(format!("mail {id}"), Some(hint)))
}

/// The digest a done notice was folded into, if it was.
fn folded_into(town: &Town, id: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    town.db
        .conn()
        .query_row(
            "SELECT json_extract(data, '$.into') FROM events
             WHERE subject = ?1 AND kind = 'mail.folded' ORDER BY id DESC LIMIT 1",
            [id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| town.db_err(e))
}

/// Mark read (or acked: handled, which marks it read too); repeating it is a no-op.
pub fn mark(town: &mut Town, id: &str, column: &'static str) -> Result<Mail> {
    get(town, id)?;
    town.db.write(|tx| {
        let now = now_ms();
        if column == "acked_at" {
            mail::mark(tx, id, "read_at", now).map_err(|e| tx.err(e))?;
        }
        if mail::mark(tx, id, column, now).map_err(|e| tx.err(e))? {
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
    fold_digests(town)?;
    // Mail for a dispatch that has ended first: it is never delivered to a later one.
    expire_ended(town)?;
    let pending = mail::undelivered(town.db.conn()).map_err(|e| town.db_err(e))?;
    if pending.is_empty() {
        return Ok(0);
    }
    // What goes into a container carries no secret value of the town, whoever wrote
    // it (mail stored before ingest redacted agents' mail, a person's, a notice quoting
    // output): the recipient may be another rig's agent, never given that secret.
    let secrets = super::secret::Redactor::of(town);
    let mut n = 0;
    for mut m in pending {
        m.subject = secrets.redact(&m.subject);
        m.body = secrets.redact(&m.body);
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

/// Ids of digest mails: `digest-<hash of the folded notices' ids>`.
pub const DIGEST_PREFIX: &str = "digest-";

/// Fold the mayor's unread done notices (`done-N`) of beads that finished `done` in rigs
/// with `digest` on into one digest mail, in one transaction: the digest is posted (its
/// id derived from the notices' ids, so a repeat is the same message), each notice is
/// removed with a `mail.folded` event naming the digest, its text kept in the digest's
/// body. Escalations are never folded, nor notices of beads that ended otherwise
/// (escalated, deferred): those stay mails of their own. Returns the digest's id.
pub fn fold_digests(town: &mut Town) -> Result<Option<String>> {
    // Cheap check first: most deliveries have nothing to fold and need no write.
    if digest_candidates(town.db.conn())
        .map_err(|e| town.db_err(e))?
        .is_empty()
    {
        return Ok(None);
    }
    // Read again inside the write transaction: two deliveries at once fold each notice
    // once (the second finds nothing left).
    town.db.write(|tx| {
        let notices = digest_candidates(tx).map_err(|e| tx.err(e))?;
        if notices.is_empty() {
            return Ok(None);
        }
        let ids: Vec<&str> = notices.iter().map(|(m, _)| m.id.as_str()).collect();
        let id = derived_id(DIGEST_PREFIX.trim_end_matches('-'), &ids.join(","));
        let mut body = String::new();
        let mut rigs: Vec<&str> = Vec::new();
        for (m, rig) in &notices {
            if !rigs.contains(&rig.as_str()) {
                rigs.push(rig);
            }
            body += &format!(
                "## {} ({}, {})\n{}\n\n",
                m.subject,
                m.id,
                crate::util::format_time(m.sent),
                m.body.trim_end()
            );
        }
        let subject = format!(
            "digest: {} bead(s) done in {}",
            notices.len(),
            rigs.join(", ")
        );
        let digest = Mail::new(
            id.clone(),
            super::patrol::ACTOR,
            MAYOR,
            subject,
            body,
            now_ms(),
        );
        post(tx, &digest)?;
        for (m, rig) in &notices {
            tx.execute("DELETE FROM mail WHERE id = ?1", [&m.id])
                .map_err(|e| tx.err(e))?;
            tx.event(
                "mail.folded",
                &m.id,
                serde_json::json!({ "into": id, "rig": rig, "subject": m.subject }),
            )?;
        }
        Ok(Some(id))
    })
}

/// The mayor's unread done notices of digest rigs whose bead is `done`, with the rig.
fn digest_candidates(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<(Mail, String)>> {
    let mut st = conn.prepare_cached(
        "SELECT m.id, r.name FROM mail m
           JOIN dispatches d ON d.id = CAST(substr(m.id, 6) AS INTEGER)
           JOIN beads b ON b.id = d.bead
           JOIN rigs r ON r.name = b.rig
          WHERE m.recipient = 'mayor' AND m.read_at IS NULL AND m.id GLOB 'done-[0-9]*'
            AND r.digest = 1 AND b.status = 'done'
            AND substr(m.subject, 1, 12) <> '[escalation]'
          ORDER BY m.sent_at, m.id",
    )?;
    let rows: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (id, rig) in rows {
        if let Some(m) = mail::get(conn, &id)? {
            out.push((m, rig));
        }
    }
    Ok(out)
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

/// End the mail of every dispatch that has ended (see [`Mail::generation`]): each is
/// acknowledged (and marked read) with a `mail.expired` event, in one transaction, and
/// its inbox file removed, so no later dispatch of the polecat reads it, whichever way
/// the dispatch ended (drained, died, done, nuked). Returns the ids expired.
pub fn expire_ended(town: &mut Town) -> Result<Vec<(String, String)>> {
    if mail::of_ended_dispatches(town.db.conn())
        .map_err(|e| town.db_err(e))?
        .is_empty()
    {
        return Ok(Vec::new()); // the usual case: no write
    }
    let ended = town.db.write(|tx| {
        let ended = mail::of_ended_dispatches(tx).map_err(|e| tx.err(e))?;
        let now = now_ms();
        for (id, to) in &ended {
            mail::mark(tx, id, "read_at", now).map_err(|e| tx.err(e))?;
            mail::mark(tx, id, "acked_at", now).map_err(|e| tx.err(e))?;
            tx.event(
                "mail.expired",
                id,
                serde_json::json!({ "to": to, "why": "its dispatch ended" }),
            )?;
        }
        Ok(ended)
    })?;
    for (id, to) in &ended {
        remove_from_inbox(town, to, id);
    }
    Ok(ended)
}

/// Take message `id` out of agent `to`'s inbox directory (host-written; absent is fine).
fn remove_from_inbox(town: &Town, to: &str, id: &str) {
    let Ok((rig, name)) = super::polecat::parse_address(to) else {
        return;
    };
    let inbox = super::workspace::places(town, &rig, &name)
        .box_dir
        .join("inbox");
    if let Ok(dir) = crate::untrusted::Dir::open(&inbox) {
        let _ = dir.remove(&format!("{id}.json"));
    }
}
