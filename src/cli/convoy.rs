//! `gt convoy create | add | status | list | close`.

use super::{Global, output};
use crate::error::Result;
use crate::town::convoy::ConvoyView;
use std::io::IsTerminal;

/// Convoys: batches of beads (across rigs) tracked together with a completion policy.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt convoy create "login fixes" api-3k9 api-7fq   # prints its id, e.g. hq-c12
  gt convoy status              # every convoy's progress
  gt sling --convoy hq-c12      # dispatch its open beads"#)]
pub struct ConvoyArgs {
    #[command(subcommand)]
    pub command: ConvoyCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConvoyCommand {
    Create(CreateArgs),
    Add(AddArgs),
    Status(StatusArgs),
    /// List convoys with their state and counts.
    #[command(after_long_help = r#"Examples:
  gt convoy list                # id, name, state, counts
  gt --json convoy list"#)]
    List,
    Close(CloseArgs),
}

/// Create a convoy of beads; prints its id (e.g. hq-c12).
///
/// States: open, landed (all done, and merged where the
/// rig lands work: `gt rig set R --merge`), partial (all ended, policy met, some not
/// done), failed (the policy can no longer be met), closed.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt convoy create "login fixes" api-3k9 api-7fq             # lands when all are done
  gt convoy create "try both" api-3k9 api-7fq --policy best-effort
  gt convoy create "most of them" api-3k9 api-7fq --policy quorum=50%"#)]
pub struct CreateArgs {
    /// A name for people.
    pub name: String,
    /// The beads it tracks (any rigs).
    #[arg(required = true)]
    pub beads: Vec<String>,
    /// all (every bead done), best-effort (some done), or quorum=N% (N% done).
    #[arg(long, default_value = "all")]
    pub policy: String,
}

/// Add beads to a convoy (a landed or partial convoy opens again).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt convoy add hq-c12 api-7fq  # track one more bead
  gt convoy status hq-c12"#)]
pub struct AddArgs {
    /// The convoy id.
    pub id: String,
    /// The beads to add (any rig); a bead already in the convoy is not added twice.
    #[arg(required = true)]
    pub beads: Vec<String>,
}

/// Show one convoy, or every convoy, with its progress.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt convoy status              # every convoy, with a progress line
  gt convoy status hq-c12       # one, with each bead"#)]
pub struct StatusArgs {
    /// The convoy id (default: all).
    pub id: Option<String>,
}

/// Close a convoy: no more state changes. An open one needs --force.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt convoy close hq-c12        # beads still open (exits 3)
  gt convoy close hq-c12 --force"#)]
pub struct CloseArgs {
    /// The convoy id.
    pub id: String,
    /// Close even though beads are still active.
    #[arg(long)]
    pub force: bool,
}

pub fn run(g: &Global, args: &ConvoyArgs) -> Result<()> {
    match &args.command {
        ConvoyCommand::Create(a) => {
            let mut town = g.town()?;
            let v = crate::town::convoy::create(&mut town, &a.name, &a.beads, &a.policy)?;
            if g.json {
                output::json(&v)
            } else {
                output::println_out(&v.id)
            }
        }
        ConvoyCommand::Add(a) => {
            let mut town = g.town()?;
            let r = crate::town::convoy::add(&mut town, &a.id, &a.beads)?;
            if g.json {
                return output::json(&r);
            }
            let mut msg = format!(
                "{}: added {}",
                r.convoy.id,
                if r.added.is_empty() {
                    "nothing".into()
                } else {
                    r.added.join(", ")
                }
            );
            if !r.already.is_empty() {
                msg += &format!(" (already in it: {})", r.already.join(", "));
            }
            output::println_out(&format!("{msg}; state {}", r.convoy.state))
        }
        ConvoyCommand::Status(a) => {
            let mut town = g.town()?;
            crate::town::ingest::ingest_all(&mut town)?;
            let list = match &a.id {
                Some(id) => vec![crate::town::convoy::view(&town, id)?],
                None => crate::town::convoy::list(&town)?,
            };
            if g.json {
                return if a.id.is_some() {
                    output::json(&list[0])
                } else {
                    output::json(&list)
                };
            }
            if list.is_empty() {
                return output::println_out("no convoys");
            }
            let tty = std::io::stdout().is_terminal();
            let mut out = Vec::new();
            for v in &list {
                out.push(format!(
                    "{} {} [{}] {}  {}",
                    v.id,
                    output::safe_line(&v.name),
                    v.policy,
                    v.state,
                    progress(v, tty)
                ));
                for b in &v.beads {
                    out.push(format!(
                        "    {:<12} {:<12} {}",
                        output::safe_line(&b.id),
                        output::safe_line(&b.status),
                        output::safe_line(&b.title)
                    ));
                }
            }
            output::println_out(&out.join("\n"))
        }
        ConvoyCommand::List => {
            let town = g.town()?;
            let list = crate::town::convoy::list(&town)?;
            if g.json {
                return output::json(&list);
            }
            if list.is_empty() {
                return output::println_out("no convoys");
            }
            let mut t = output::Table::new(&[
                "id", "name", "policy", "state", "done", "merged", "failed", "total",
            ]);
            for v in &list {
                t.row(vec![
                    v.id.clone(),
                    v.name.clone(),
                    v.policy.clone(),
                    v.state.clone(),
                    v.done.to_string(),
                    v.merged.to_string(),
                    v.failed.to_string(),
                    v.total.to_string(),
                ]);
            }
            t.print()
        }
        ConvoyCommand::Close(a) => {
            let mut town = g.town()?;
            let v = crate::town::convoy::close(&mut town, &a.id, a.force)?;
            if g.json {
                output::json(&v)
            } else {
                output::println_out(&format!("closed {}", v.id))
            }
        }
    }
}

/// `[######----] 3/5 done, 1 failed` (and `, 2 merged` once any work landed); the bar
/// only on a terminal.
fn progress(v: &ConvoyView, tty: bool) -> String {
    let mut counts = format!("{}/{} done, {} failed", v.done, v.total, v.failed);
    if v.merged > 0 {
        counts += &format!(", {} merged", v.merged);
    }
    if !tty || v.total == 0 {
        return counts;
    }
    const W: usize = 20;
    let d = v.done * W / v.total;
    let f = (v.failed * W / v.total).min(W - d);
    format!(
        "[{}{}{}] {counts}",
        "#".repeat(d),
        "x".repeat(f),
        "-".repeat(W - d - f)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(done: usize, failed: usize, total: usize) -> ConvoyView {
        ConvoyView {
            id: "cv-1".into(),
            name: "n".into(),
            policy: "all".into(),
            state: "open".into(),
            total,
            done,
            merged: 0,
            failed,
            beads: vec![],
            version: 1,
        }
    }

    #[test]
    fn a_terminal_gets_a_bar_a_pipe_gets_counts() {
        assert_eq!(
            progress(&view(2, 1, 4), true),
            "[##########xxxxx-----] 2/4 done, 1 failed"
        );
        assert_eq!(progress(&view(2, 1, 4), false), "2/4 done, 1 failed");
        assert_eq!(progress(&view(0, 0, 0), true), "0/0 done, 0 failed");
    }
}
