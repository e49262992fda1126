//! `gt bead create | list | show | close | reopen | edit`.

use super::{Global, output};
use crate::error::{Error, Result};
use crate::town::bead::Edit;

/// Manage beads: the work items you give agents (`gt sling`).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt bead create --rig api "Fix the login form" -m "It returns 500 on an empty password"
  gt bead list --rig api        # oldest first, with status and who holds it
  gt bead show api-3k9          # one bead, its agent and every dispatch
  gt bead close api-7fq         # nobody works on it: cancelled, history kept"#)]
pub struct BeadArgs {
    #[command(subcommand)]
    pub command: BeadCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum BeadCommand {
    Create(CreateArgs),
    List(ListArgs),
    #[command(after_long_help = r#"Examples:
  gt bead show api-3k9          # status, holder, dispatches and how each ended
  gt --json bead show api-3k9   # the same, with its version for --if-version
  gt log --subject api-3k9      # the bead's whole story"#)]
    Show(IdArg),
    Close(CloseArgs),
    Reopen(ReopenArgs),
    Edit(EditArgs),
}

/// Give a failed, escalated, deferred or cancelled bead another go (status open).
///
/// Its attempts start again from zero (max_attempts applies afresh), its branch and its
/// history stay: the next `gt sling` resumes on the same branch, and the agent's
/// `gt prime` shows every earlier attempt and how it ended. A done bead stays done:
/// create a new bead for more work.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt bead reopen api-3k9        # failed or cancelled: attempts from zero, same branch
  gt bead reopen api-3k9        # open already: nothing to reopen (exits 3)
  gt sling api-3k9              # the next agent reads the earlier attempts in gt prime"#)]
pub struct ReopenArgs {
    /// The bead id.
    pub id: String,
    /// Only reopen it if its version is still N (exit 3 otherwise).
    #[arg(long, value_name = "N")]
    pub if_version: Option<i64>,
}

/// Create a bead in a rig; prints its new id (e.g. api-3k9).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt bead create --rig api "Fix the login form" -m "It returns 500 on an empty password"
  gt bead create --rig api "Write the migration" -F spec.md   # the body from a file
  git log -1 --format=%B | gt bead create --rig api "Redo the last commit" -F -
  gt bead create "Fix the login form"                         # no --rig (exits 2)"#)]
pub struct CreateArgs {
    /// The rig the work belongs to.
    #[arg(long)]
    pub rig: String,
    /// A one-line title.
    pub title: String,
    /// The full description the agent is given.
    #[arg(short = 'm', long = "body", conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the description from FILE instead (`-` reads standard input), e.g. a
    /// Markdown file or `git log -1 --format=%B | gt bead create … -F -`. At most 1 MiB
    /// of UTF-8.
    #[arg(short = 'F', long = "body-file", value_name = "FILE")]
    pub body_file: Option<std::path::PathBuf>,
}

/// The longest body --body-file reads: a description, not a data set.
const MAX_BODY_FILE: u64 = 1 << 20;

/// The body of `bead create`: -m, or the file (or stdin) --body-file names.
fn body(a: &CreateArgs) -> Result<String> {
    let Some(path) = &a.body_file else {
        return Ok(a.body.clone().unwrap_or_default());
    };
    let shown = path.display();
    let mut reader: Box<dyn std::io::Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).map_err(|e| {
            Error::usage(format!("--body-file {shown}: cannot read it: {e}"))
                .with_hint("give a readable file, or `-` for standard input")
        })?;
        Box::new(f)
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut reader, MAX_BODY_FILE + 1),
        &mut bytes,
    )
    .map_err(|e| Error::usage(format!("--body-file {shown}: cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_BODY_FILE {
        return Err(Error::usage(format!("--body-file {shown} is over 1 MiB"))
            .with_hint("a bead body is a description; point to large files from it instead"));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::usage(format!("--body-file {shown} is not UTF-8 text")))
}

/// List beads, oldest first.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt bead list                          # every bead, oldest first
  gt bead list --rig api --status open  # what waits in api
  gt --json bead list --status failed   # for a program"#)]
pub struct ListArgs {
    /// Only this rig's beads.
    #[arg(long)]
    pub rig: Option<String>,
    /// Only beads in this status (open, hooked, in_progress, done, failed, escalated,
    /// deferred, cancelled).
    #[arg(long)]
    pub status: Option<String>,
}

/// Show a bead, the agent holding it and every dispatch of it.
#[derive(clap::Args, Debug)]
pub struct IdArg {
    /// The bead id.
    pub id: String,
}

/// Close a bead nobody works on (status cancelled). Its history is kept.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt bead close api-7fq                 # cancelled; its history stays
  gt bead close api-3k9 --if-version 1  # only if nobody changed it since version 1"#)]
pub struct CloseArgs {
    /// The bead id.
    pub id: String,
    /// Only close it if its version is still N (exit 3 otherwise).
    #[arg(long, value_name = "N")]
    pub if_version: Option<i64>,
}

/// Change a bead's title or body.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt bead edit api-3k9 --title "Fix the login form (empty password)"
  gt bead edit api-3k9 -m "It returns 500 when the password is empty"
  gt bead edit api-3k9 --title "Old" --if-version 1   # lost to a newer edit (exits 3)"#)]
pub struct EditArgs {
    /// The bead id.
    pub id: String,
    /// The new title.
    #[arg(long)]
    pub title: Option<String>,
    /// The new body.
    #[arg(short = 'm', long = "body")]
    pub body: Option<String>,
    /// Only write if the bead's version is still N, the one you read (exit 3 otherwise).
    #[arg(long, value_name = "N")]
    pub if_version: Option<i64>,
}

pub fn run(g: &Global, args: &BeadArgs) -> Result<()> {
    match &args.command {
        BeadCommand::Create(a) => {
            let body = body(a)?;
            let mut town = g.town()?;
            let bead = crate::town::bead::create(&mut town, &a.rig, &a.title, &body)?;
            if g.json {
                output::json(&bead)
            } else {
                output::println_out(&bead.id)
            }
        }
        BeadCommand::List(a) => {
            let mut town = g.town()?;
            crate::town::ingest::ingest_all(&mut town)?;
            let beads = crate::town::bead::list(&town, a.rig.as_deref(), a.status.as_deref())?;
            if g.json {
                return output::json(&beads);
            }
            if beads.is_empty() {
                return output::println_out("no beads");
            }
            let mut t = output::Table::new(&["id", "rig", "status", "attempts", "title"]);
            for b in &beads {
                let status = if b.queued {
                    format!("{} (queued)", b.status)
                } else {
                    b.status.clone()
                };
                t.row(vec![
                    b.id.clone(),
                    b.rig.clone(),
                    status,
                    b.attempts.to_string(),
                    b.title.clone(),
                ]);
            }
            t.print()
        }
        BeadCommand::Show(a) => {
            let mut town = g.town()?;
            crate::town::ingest::ingest_all(&mut town)?;
            let d = crate::town::bead::show(&town, &a.id)?;
            if g.json {
                return output::json(&d);
            }
            // Bead text, dispatch endings and checkpoints (an agent writes their notes and
            // heads) are shown with control characters escaped.
            let b = &d.bead;
            let mut s = format!(
                "id:       {}\nrig:      {}\ntitle:    {}\nstatus:   {}{}\nagent:    {}\nbranch:   {}\nattempts: {}\ncreated:  {}\nupdated:  {}\nversion:  {}",
                output::safe_line(&b.id),
                output::safe_line(&b.rig),
                output::safe_line(&b.title),
                output::safe_line(&b.status),
                if b.queued {
                    " (queued: waiting for a free polecat)"
                } else {
                    ""
                },
                output::safe_line(&output::opt(&d.agent)),
                output::safe_line(&output::opt(&b.branch)),
                b.attempts,
                output::time(b.created_at),
                output::time(b.updated_at),
                b.version
            );
            if !b.body.is_empty() {
                s += &format!("\n\n{}", output::safe(&b.body));
            }
            for dd in &d.dispatches {
                let x = &dd.dispatch;
                // The bead's own attempt number; the town-wide dispatch id in parentheses.
                let which = match dd.attempt {
                    Some(n) => format!("attempt {n}"),
                    None => "not counted".to_string(),
                };
                s += &format!(
                    "\n\n{which} (dispatch {}) to {} (generation {}), started {}{}",
                    x.id,
                    output::safe_line(&x.agent),
                    x.generation,
                    output::time(x.started_at),
                    match (x.ended_at, &x.reason) {
                        (Some(at), r) => format!(
                            ", ended {} ({})",
                            output::time(at),
                            output::safe_line(&output::opt(r))
                        ),
                        _ => String::new(),
                    }
                );
                for cp in &dd.checkpoints {
                    let what = if cp.step == "note" {
                        format!(
                            "checkpoint: {}",
                            output::safe_line(cp.note.as_deref().unwrap_or(""))
                        )
                    } else {
                        format!("done saga: {}", output::safe_line(&cp.step))
                    };
                    let head = cp
                        .head
                        .as_deref()
                        .map(|h| format!(" at {}", output::safe_line(output::short(h, 12))))
                        .unwrap_or_default();
                    s += &format!("\n  {} {what}{head}", output::time(cp.at));
                }
            }
            let next = match b.status.as_str() {
                "open" if !b.queued => Some(format!("`gt sling {}` starts it", b.id)),
                "failed" | "escalated" | "deferred" | "cancelled" => Some(format!(
                    "`gt bead reopen {}` gives it another go{}",
                    b.id,
                    b.branch
                        .as_deref()
                        .map(|br| format!(", on branch {}", output::safe_line(br)))
                        .unwrap_or_default()
                )),
                _ => None,
            };
            if let Some(next) = next {
                s += &format!("\n\nnext: {next}");
            }
            output::println_out(&s)
        }
        BeadCommand::Close(a) => {
            let mut town = g.town()?;
            let b = crate::town::bead::close(&mut town, &a.id, a.if_version)?;
            if g.json {
                output::json(&b)
            } else {
                output::println_out(&format!("closed {} (version {})", b.id, b.version))
            }
        }
        BeadCommand::Reopen(a) => {
            let mut town = g.town()?;
            let b = crate::town::bead::reopen(&mut town, &a.id, a.if_version)?;
            if g.json {
                output::json(&b)
            } else {
                output::println_out(&format!(
                    "reopened {} (version {}); `gt sling {}` gives it another go",
                    b.id, b.version, b.id
                ))
            }
        }
        BeadCommand::Edit(a) => {
            let mut town = g.town()?;
            let edit = Edit {
                title: a.title.clone(),
                body: a.body.clone(),
                expect_version: a.if_version,
            };
            let b = crate::town::bead::edit(&mut town, &a.id, &edit)?;
            if g.json {
                output::json(&b)
            } else {
                output::println_out(&format!("edited {} (version {})", b.id, b.version))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn create(args: &[&str]) -> std::result::Result<CreateArgs, clap::Error> {
        let cli =
            Cli::try_parse_from([&["gt", "bead", "create", "--rig", "api", "t"], args].concat())?;
        match cli.command {
            Command::Bead(BeadArgs {
                command: BeadCommand::Create(a),
            }) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_body_comes_from_m_or_from_a_file_never_both() {
        let a = create(&["-m", "text"]).unwrap();
        assert_eq!(body(&a).unwrap(), "text");
        assert_eq!(body(&create(&[]).unwrap()).unwrap(), "");
        let a = create(&["-F", "-"]).unwrap();
        assert_eq!(a.body_file.as_deref(), Some(std::path::Path::new("-")));
        let a = create(&["--body-file", "notes.md"]).unwrap();
        assert_eq!(
            a.body_file.as_deref(),
            Some(std::path::Path::new("notes.md"))
        );
        let e = create(&["-m", "x", "-F", "notes.md"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = body(&create(&["-F", "/no/such/file"]).unwrap()).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::USAGE);
        assert!(e.to_string().contains("--body-file"), "{e}");
    }
}
