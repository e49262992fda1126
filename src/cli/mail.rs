//! `gt mail send | inbox | read | ack`, on the host or (with GT_AGENT set) in an agent.

use super::{Global, output};
use crate::agent::mode;
use crate::agent::request::Body;
use crate::error::Result;
use crate::state::mail::Mail;

/// Durable mail between agents, the mayor and you. Sending twice with one --id is one message.
#[derive(clap::Args, Debug)]
pub struct MailArgs {
    #[command(subcommand)]
    pub command: MailCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum MailCommand {
    Send(SendArgs),
    Inbox(InboxArgs),
    Read(IdArg),
    Ack(IdArg),
}

/// Send a message to `mayor`, `human` or RIG/POLECAT.
#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The recipient: mayor, human or RIG/POLECAT.
    pub to: String,
    /// A one-line subject.
    #[arg(short = 's', long = "subject")]
    pub subject: String,
    /// The message (at most 64 KiB).
    #[arg(short = 'm', long = "message")]
    pub body: String,
    /// The idempotency key: a repeated send with the same id is one message.
    #[arg(long)]
    pub id: Option<String>,
}

/// List messages, oldest first.
#[derive(clap::Args, Debug)]
pub struct InboxArgs {
    /// Whose inbox (host only): mayor (default), human or RIG/POLECAT.
    #[arg(long = "as", value_name = "ADDR", default_value = "mayor")]
    pub as_addr: String,
    /// Only unread messages.
    #[arg(long)]
    pub unread: bool,
}

/// Show one message and mark it read (or, for `ack`, acknowledged).
#[derive(clap::Args, Debug)]
pub struct IdArg {
    /// The mail id.
    pub id: String,
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
            let list = crate::town::mail::inbox(&town, &a.as_addr, a.unread)?;
            print_list(g, &list)
        }
        MailCommand::Read(a) => {
            let mut town = g.town()?;
            let m = crate::town::mail::mark(&mut town, &a.id, "read_at")?;
            print_one(g, &m)
        }
        MailCommand::Ack(a) => {
            let mut town = g.town()?;
            let m = crate::town::mail::mark(&mut town, &a.id, "acked_at")?;
            if g.json {
                output::json(&m)
            } else {
                output::println_out(&format!("acked {}", m.id))
            }
        }
    }
}

fn agent_side(g: &Global, args: &MailArgs) -> Result<()> {
    let c = mode::ctx()?;
    match &args.command {
        MailCommand::Send(a) => {
            if let Some(id) = &a.id {
                crate::town::mail::check_id(id)?;
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
            let list: Vec<Mail> = c.inbox(a.unread)?.into_iter().map(|(m, _)| m).collect();
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
            c.mark_read(&a.id)?;
            c.send(Body::Ack {
                mail_id: a.id.clone(),
            })?;
            output::println_out(&format!("acked {}", a.id))
        }
    }
}

fn print_list(g: &Global, list: &[Mail]) -> Result<()> {
    if g.json {
        return output::json(list);
    }
    if list.is_empty() {
        return output::println_out("no mail");
    }
    let mut t = output::Table::new(&["id", "sent", "from", "read", "subject"]);
    for m in list {
        t.row(vec![
            m.id.clone(),
            output::time(m.sent),
            m.from.clone(),
            if m.read.is_some() {
                "yes".into()
            } else {
                "no".into()
            },
            m.subject.clone(),
        ]);
    }
    t.print()
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
