//! `gt mail send | inbox | read | ack`, on the host or (with GT_AGENT set) in an agent.

use super::{Global, output};
use crate::agent::mode;
use crate::agent::request::Body;
use crate::error::Result;
use crate::state::mail::Mail;
use crate::town::mail::{Filter, Listed, MailKind};

/// Durable mail between agents, the mayor (your inbox) and you.
///
/// Each polecat has an inbox it reads in `gt prime`; the mayor's inbox gets done notices
/// and escalations. Sending twice with one --id is one message.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt mail inbox --unread                          # the mayor's unread mail
  gt mail read done-7                             # one message in full
  gt mail send api/furiosa -s "Scope" -m "Only the login form, not signup"
  gt mail ack done-7                              # handled"#)]
pub struct MailArgs {
    #[command(subcommand)]
    pub command: MailCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum MailCommand {
    Send(SendArgs),
    Inbox(InboxArgs),
    Read(ReadArgs),
    Ack(AckArgs),
}

/// Send a message to `mayor`, `human` or RIG/POLECAT.
///
/// One sender may have at most 50 unread messages in one polecat's inbox (an agent's
/// unread mail goes into its `gt prime`): past that, a send is refused (exit 2) until
/// the polecat reads some, or you file them away with `gt mail ack --all --as
/// RIG/POLECAT --from human`. Mail an agent sends is counted per sending agent.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt mail send api/furiosa -s "Scope" -m "Only the login form, not signup"
  gt mail send mayor -s "Deploy" -m "Friday" --id deploy-1   # sent once, however often run
  gt mail send human -s "Note" -m "for whoever reads the human inbox""#)]
pub struct SendArgs {
    /// The recipient: mayor, human or RIG/POLECAT.
    pub to: String,
    /// A one-line subject (at most 256 bytes).
    #[arg(short = 's', long = "subject")]
    pub subject: String,
    /// The message (at most 64 KiB).
    #[arg(short = 'm', long = "message")]
    pub body: String,
    /// The idempotency key: a repeated send with the same id is one message.
    #[arg(long)]
    pub id: Option<String>,
}

/// List an inbox's messages (the mayor's by default), oldest first.
///
/// Each has a kind: `escalation` (something needs a person:
/// a bead given up, Docker down, an agent's `gt escalate`), `notice` (what gt reports:
/// done notices, digests, quiet agents, convoys) or `message` (written with `gt mail
/// send`). Filters combine; times are relative ("4m ago"), exact in `--json`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt mail inbox --unread                      # what you have not read yet
  gt mail inbox --kind escalation             # what needs you
  gt mail inbox --from api/furiosa            # one agent's messages
  gt mail ack --all --kind notice             # file every notice away"#)]
pub struct InboxArgs {
    /// Whose inbox (host only): mayor (default), human or RIG/POLECAT.
    #[arg(long = "as", value_name = "ADDR", default_value = "mayor")]
    pub as_addr: String,
    /// Only unread messages.
    #[arg(long)]
    pub unread: bool,
    /// Only messages from this sender: RIG/POLECAT, human, mayor, or patrol.
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,
    /// Only messages of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<crate::town::mail::MailKind>,
}

/// Show one message in full (sender, time, subject, body) and mark it read.
///
/// Reading does not acknowledge it: `gt mail ack ID` marks it handled (the inbox's READ
/// column then says `acked`).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt mail read done-7           # sender, time, subject, body; marks it read
  gt mail ack done-7            # then file it away"#)]
pub struct ReadArgs {
    /// The mail id (from `gt mail inbox`).
    pub id: String,
}

/// Acknowledge messages: mark them handled (and read).
///
/// Nothing is deleted; the message stays readable with `gt mail read ID`. Give one id, or --all with optional filters.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt mail ack done-7                        # one message
  gt mail ack --all --kind notice           # every notice of the mayor's inbox
  gt mail ack --all --as api/furiosa --from human   # unblock a full polecat inbox"#)]
pub struct AckArgs {
    /// The mail id to acknowledge.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Acknowledge every message of the inbox not acknowledged yet (those --kind and
    /// --from keep).
    #[arg(long)]
    pub all: bool,
    /// With --all: only messages of this kind.
    #[arg(long, value_enum, requires = "all")]
    pub kind: Option<crate::town::mail::MailKind>,
    /// With --all: only messages from this sender.
    #[arg(long, value_name = "ADDR", requires = "all")]
    pub from: Option<String>,
    /// With --all, on the host: whose inbox (mayor, human or RIG/POLECAT).
    #[arg(
        long = "as",
        value_name = "ADDR",
        default_value = "mayor",
        requires = "all"
    )]
    pub as_addr: String,
}

pub fn run(g: &Global, args: &MailArgs) -> Result<()> {
    if mode::active() {
        return agent_side(g, args);
    }
    match &args.command {
        MailCommand::Send(a) => {
            let mut town = g.town()?;
            let sent = crate::town::mail::send(
                &mut town,
                crate::town::HUMAN,
                &a.to,
                &a.subject,
                &a.body,
                a.id.as_deref(),
            )?;
            if let Some(why) = &sent.delivery_pending {
                eprintln!(
                    "warning: mail {} stored, delivery pending: {}; the next `gt patrol` \
                     delivers it (do not send it again)",
                    sent.id,
                    output::safe(why)
                );
            }
            if g.json {
                output::json(&sent)
            } else if sent.new {
                output::println_out(&sent.id)
            } else {
                output::println_out(&format!("{} (already sent; not sent again)", sent.id))
            }
        }
        MailCommand::Inbox(a) => {
            let mut town = g.town()?;
            crate::town::ingest::ingest_all(&mut town)?;
            let list = crate::town::mail::inbox(&town, &a.as_addr, &inbox_filter(a))?;
            print_list(g, &list)
        }
        MailCommand::Read(a) => {
            let mut town = g.town()?;
            let m = crate::town::mail::mark(&mut town, &a.id, "read_at")?;
            print_one(g, &m)
        }
        MailCommand::Ack(a) => {
            let mut town = g.town()?;
            if let Some(id) = &a.id {
                let m = crate::town::mail::mark(&mut town, id, "acked_at")?;
                return if g.json {
                    output::json(&m)
                } else {
                    output::println_out(&format!("acked {}", m.id))
                };
            }
            crate::town::ingest::ingest_all(&mut town)?;
            let ids = crate::town::mail::ack_all(&mut town, &a.as_addr, &ack_filter(a))?;
            print_acked(g, &ids)
        }
    }
}

fn inbox_filter(a: &InboxArgs) -> Filter {
    Filter {
        unread: a.unread,
        from: a.from.clone(),
        kind: a.kind,
    }
}

fn ack_filter(a: &AckArgs) -> Filter {
    Filter {
        unread: false,
        from: a.from.clone(),
        kind: a.kind,
    }
}

fn print_acked(g: &Global, ids: &[String]) -> Result<()> {
    if g.json {
        return output::json(&serde_json::json!({ "acked": ids }));
    }
    output::println_out(&match ids.len() {
        0 => "nothing to acknowledge".to_string(),
        n => format!("acked {n} message(s)"),
    })
}

fn agent_side(g: &Global, args: &MailArgs) -> Result<()> {
    let c = mode::ctx()?;
    match &args.command {
        MailCommand::Send(a) => {
            if let Some(id) = &a.id {
                crate::town::mail::check_id(id)?;
            }
            // What the host would refuse unseen (the send is a queued request) is
            // refused here, where the agent sees why.
            if a.to != crate::town::mail::MAYOR
                && a.to != crate::town::HUMAN
                && crate::town::polecat::parse_address(&a.to).is_err()
            {
                return Err(crate::error::Error::usage(format!(
                    "{:?} is not a mail address",
                    a.to
                ))
                .with_hint("use `mayor`, `human` or RIG/POLECAT"));
            }
            if a.subject.len() > crate::town::mail::MAX_SUBJECT {
                return Err(crate::error::Error::usage(format!(
                    "the subject is {} bytes; subjects are at most {}",
                    a.subject.len(),
                    crate::town::mail::MAX_SUBJECT
                ))
                .with_hint("put the rest in the body (-m)"));
            }
            if a.body.len() > crate::agent::request::MAX_MAIL_BODY {
                return Err(crate::error::Error::usage(format!(
                    "the body is {} bytes; mail bodies are at most 64 KiB",
                    a.body.len()
                )));
            }
            let id = c.send(Body::Mail {
                to: a.to.clone(),
                subject: a.subject.clone(),
                body: a.body.clone(),
                mail_id: a.id.clone(),
            })?;
            if g.json {
                output::json(&serde_json::json!({ "request": id }))
            } else {
                output::println_out(&format!("queued (request {id})"))
            }
        }
        MailCommand::Inbox(a) => {
            let filter = inbox_filter(a);
            let list: Vec<Listed> = c
                .inbox(a.unread)?
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| {
                    Filter {
                        unread: false,
                        ..filter.clone()
                    }
                    .keeps(m)
                })
                .map(|mail| Listed {
                    kind: MailKind::of(&mail),
                    mail,
                })
                .collect();
            print_list(g, &list)
        }
        MailCommand::Read(a) => {
            let m = c.mark_read(&a.id)?;
            c.send(Body::Read {
                mail_id: a.id.clone(),
            })?;
            print_one(g, &m)
        }
        MailCommand::Ack(a) => {
            let ids = match &a.id {
                Some(id) => vec![id.clone()],
                None => c
                    .inbox(false)?
                    .into_iter()
                    .map(|(m, _)| m)
                    .filter(|m| ack_filter(a).keeps(m))
                    .map(|m| m.id)
                    .collect(),
            };
            for id in &ids {
                c.mark_read(id)?;
                c.send(Body::Ack {
                    mail_id: id.clone(),
                })?;
            }
            if a.id.is_some() && !g.json {
                return output::println_out(&format!("acked {}", ids[0]));
            }
            print_acked(g, &ids)
        }
    }
}

fn print_list(g: &Global, list: &[Listed]) -> Result<()> {
    if g.json {
        return output::json(list);
    }
    if list.is_empty() {
        return output::println_out("no mail");
    }
    let mut t = output::Table::new(&["id", "sent", "kind", "from", "read", "subject"]);
    t.colour(2, |k| (k == "escalation").then_some(output::Colour::Red));
    t.colour(4, |r| (r == "no").then_some(output::Colour::Yellow));
    for Listed { mail: m, kind } in list {
        t.row(vec![
            m.id.clone(),
            output::ago(m.sent),
            kind_name(*kind).into(),
            m.from.clone(),
            match (m.read, m.acked) {
                (_, Some(_)) => "acked".into(),
                (Some(_), None) => "yes".into(),
                (None, None) => "no".into(),
            },
            m.subject.clone(),
        ]);
    }
    t.print()
}

fn kind_name(k: MailKind) -> &'static str {
    match k {
        MailKind::Escalation => "escalation",
        MailKind::Notice => "notice",
        MailKind::Message => "message",
    }
}

fn print_one(g: &Global, m: &Mail) -> Result<()> {
    if g.json {
        return output::json(m);
    }
    // Agents write subjects and bodies: shown with control characters escaped.
    output::println_out(&format!(
        "id:      {}\nfrom:    {}\nto:      {}\nsent:    {}\nsubject: {}\n\n{}",
        output::safe_line(&m.id),
        output::safe_line(&m.from),
        output::safe_line(&m.to),
        output::time(m.sent),
        output::safe_line(&m.subject),
        output::safe(&m.body)
    ))
}
