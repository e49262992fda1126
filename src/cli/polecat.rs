//! `gt polecat list | nuke`, `gt peek`, and `gt agent run` (the container entrypoint).

use super::{Global, output};
use crate::error::Result;

/// Manage polecats: the worker agents of each rig.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt polecat list               # who works on what, in which generation, and why
  gt polecat nuke api/furiosa   # stop it; its bead goes back to open, its work stays
  gt sling api-3k9              # carry on: the same polecat resumes in its kept worktree"#)]
pub struct PolecatArgs {
    #[command(subcommand)]
    pub command: PolecatCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum PolecatCommand {
    List(ListArgs),
    Nuke(NukeArgs),
    Revive(ReviveArgs),
}

/// List polecats at work: state, bead, generation, last heard from, and why.
///
/// For each: its state, bead, generation, when started and last heard from, and why it
/// is in its state. First, what those states rest on: whether the engine answers now,
/// and patrol's last pass (as in `gt status`).
///
/// Idle polecats (no bead) are hidden unless --all; `--json` always lists every polecat,
/// with exact times (epoch milliseconds) and `observed`, the container's state as the
/// engine reports it now. The engine is asked with a short timeout: when it does not
/// answer, states are as last recorded and the list says so. A state the engine
/// contradicts (recorded running, container exited) is marked in the STATE column.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt polecat list               # polecats at work
  gt polecat list --all         # idle ones too
  gt polecat list --rig api --json"#)]
pub struct ListArgs {
    /// Only this rig's polecats.
    #[arg(long)]
    pub rig: Option<String>,
    /// Show idle polecats too.
    #[arg(long)]
    pub all: bool,
}

/// Stop a polecat: its container goes, its bead returns to open, its branch stays.
///
/// Its bead's history is kept. Its worktree is deleted only when it holds no uncommitted or unpushed
/// work; otherwise it is kept and the polecat stays `nuked` until you look at it.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt polecat nuke api/furiosa          # keeps a worktree with unsaved work
  gt polecat nuke api/furiosa --force  # drops it too (says what it dropped)
  gt sling api-3k9                     # carry on the bead on its branch"#)]
pub struct NukeArgs {
    /// The polecat, as RIG/NAME.
    pub agent: String,
    /// Delete the worktree even with uncommitted or unpushed work (says what it dropped).
    #[arg(long)]
    pub force: bool,
}

/// Make a nuked polecat work again (idle), dropping the worktree its nuke kept.
///
/// The worktree is dropped only when it holds nothing unsaved, unless --force. Its branch stays. Not needed to
/// continue the bead it held: `gt sling BEAD` revives it in place, with its work.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt polecat nuke api/furiosa          # its worktree holds an unpushed commit: kept
  gt polecat revive api/furiosa        # refused while that work is unsaved (exits 3)
  gt polecat revive api/furiosa --force   # drop the worktree; the name works again"#)]
pub struct ReviveArgs {
    /// The polecat, as RIG/NAME.
    pub agent: String,
    /// Drop the kept worktree even with uncommitted or unpushed work.
    #[arg(long)]
    pub force: bool,
}

/// Show the recent output of a polecat's container.
///
/// The agent wrote it: terminal control characters in it (escape sequences, carriage
/// returns, bidi overrides) are shown escaped, e.g. `\x1b[2J`, unless --raw. The value
/// of every town secret (`gt secret list`) is shown as `[secret NAME]`, --raw included.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt peek api/furiosa              # its container's output, or its last transcript
  gt peek api/furiosa -n 20 --raw
  gt peek --bead api-3k9           # the latest attempt at a bead
  gt peek --bead api-3k9 --attempt 1"#)]
pub struct PeekArgs {
    /// The polecat, as RIG/NAME. Once its container is gone, its last dispatch's kept
    /// transcript is shown.
    #[arg(required_unless_present = "bead")]
    pub agent: Option<String>,
    /// Show a bead's attempt instead (its transcript, or its live container's output).
    #[arg(long, value_name = "ID", conflicts_with = "agent")]
    pub bead: Option<String>,
    /// With --bead: which attempt, counting from 1 (default: the latest).
    #[arg(long, value_name = "N", requires = "bead")]
    pub attempt: Option<usize>,
    /// How many lines.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub lines: usize,
    /// Print the output as the container wrote it: control characters pass through
    /// (only into a terminal you trust the agent with, or a file); known secret values
    /// are still shown as [secret NAME].
    #[arg(long)]
    pub raw: bool,
    /// Keep printing what the agent writes until its container exits.
    #[arg(long, short = 'f', conflicts_with = "bead")]
    pub follow: bool,
}

pub fn run(g: &Global, args: &PolecatArgs) -> Result<()> {
    match &args.command {
        PolecatCommand::List(a) => {
            let mut town = g.town()?;
            crate::town::ingest::ingest_all(&mut town)?;
            let engine = crate::town::status::engine(&town, &super::status::probe(&town));
            let rows = crate::town::polecat::list(&town, a.rig.as_deref(), &engine)?;
            if g.json {
                return output::json(&rows);
            }
            let patrol = crate::town::status::patrol_health(&town)?;
            list_table(&rows, &engine, &patrol, a.all)
        }
        PolecatCommand::Nuke(a) => {
            let mut town = g.town()?;
            let rt = crate::runtime::connect(&town.config.runtime)?;
            let n = crate::town::polecat::nuke(&mut town, rt.as_ref(), &a.agent, a.force)?;
            if g.json {
                return output::json(&n);
            }
            output::println_out(&nuked_message(&n))
        }
        PolecatCommand::Revive(a) => {
            let mut town = g.town()?;
            let rt = crate::runtime::connect(&town.config.runtime)?;
            let n = crate::town::polecat::revive(&mut town, rt.as_ref(), &a.agent, a.force)?;
            if g.json {
                return output::json(&n);
            }
            let dropped = if n.unsaved.is_empty() {
                String::new()
            } else {
                format!(
                    " (dropped {} uncommitted file(s); unpushed commits stay on the branch)",
                    n.unsaved.uncommitted.len()
                )
            };
            output::println_out(&format!(
                "revived {}: idle again, its kept worktree removed{dropped}",
                n.agent
            ))
        }
    }
}

/// The table of `gt polecat list`: idle polecats hidden unless `all`, times relative,
/// an engine that does not answer said first.
fn list_table(
    rows: &[crate::town::polecat::PolecatRow],
    engine: &crate::town::status::Engine,
    patrol: &crate::town::status::PatrolHealth,
    all: bool,
) -> Result<()> {
    // What the states below rest on: the engine asked now, and patrol's last look.
    output::println_out(&format!(
        "{}\npatrol: {}",
        super::status::engine_line(engine),
        super::status::patrol_line(patrol)
    ))?;
    if let Some(w) = &patrol.warning {
        output::println_out(&format!(
            "{}: {}",
            output::paint("WARNING", output::Colour::Yellow),
            output::safe_line(w)
        ))?;
    }
    if rows.is_empty() {
        return output::println_out("no polecats yet; `gt sling BEAD` starts one");
    }
    let shown: Vec<_> = rows.iter().filter(|r| all || r.state != "idle").collect();
    let hidden = rows.len() - shown.len();
    if shown.is_empty() {
        return output::println_out(&format!(
            "no polecat at work; {hidden} idle (`gt polecat list --all` shows them)"
        ));
    }
    let mut t = output::Table::new(&[
        "rig", "name", "state", "bead", "gen", "started", "heard", "why",
    ]);
    t.colour(2, |c| {
        if c.contains('(') {
            Some(output::Colour::Red)
        } else {
            output::state_colour(c)
        }
    });
    for r in shown {
        // Recorded as live, but the engine says otherwise: patrol will act; say it now.
        let state = match (r.state.as_str(), r.observed) {
            ("running", Some(o)) if o != "running" => {
                format!("{} (container {o})", r.state)
            }
            _ => r.state.clone(),
        };
        t.row(vec![
            r.rig.clone(),
            r.name.clone(),
            state,
            output::opt(&r.bead),
            r.generation.to_string(),
            r.started.map(output::ago).unwrap_or_else(|| "-".into()),
            r.last_heard.map(output::ago).unwrap_or_else(|| "-".into()),
            r.why.clone(),
        ]);
    }
    t.print()?;
    if hidden > 0 {
        output::println_out(&format!(
            "{hidden} idle polecat(s) hidden; --all shows them"
        ))?;
    }
    Ok(())
}

/// What a nuke did, in words (`gt polecat nuke` and the `n` key of `gt top`).
pub fn nuked_message(n: &crate::town::polecat::Nuked) -> String {
    let mut msg = format!(
        "nuked {}: {} container(s) removed",
        n.agent, n.containers_removed
    );
    if let Some(b) = &n.bead_reopened {
        msg += &format!("; bead {} is open again", output::safe_line(b));
    }
    if let Some(b) = &n.branch_kept {
        msg += &format!("; branch {} kept", output::safe_line(b));
    }
    match n.worktree {
        "kept" => {
            msg += &format!(
                "\nworktree {} KEPT: {} uncommitted file(s), {} unpushed commit(s)",
                output::safe_line(n.worktree_path.as_deref().unwrap_or("-")),
                n.unsaved.uncommitted.len(),
                n.unsaved.unpushed_commits,
            );
            if let Some(b) = &n.bead_reopened {
                msg += &format!(
                    "\n`gt sling {b}` continues there with this polecat; `gt polecat nuke {} --force` drops the worktree",
                    n.agent
                );
            } else {
                msg += &format!(
                    "\nlook at it, then `gt polecat revive {}` (or `gt polecat nuke {} --force`) to drop it",
                    n.agent, n.agent
                );
            }
        }
        "removed" if !n.unsaved.is_empty() => {
            msg += &format!(
                "\nworktree removed with --force: dropped {} uncommitted file(s) ({}); {} unpushed commit(s) stay on the branch",
                n.unsaved.uncommitted.len(),
                // File names the agent chose.
                output::safe_line(&n.unsaved.uncommitted.join(", ")),
                n.unsaved.unpushed_commits
            )
        }
        "removed" => msg += "; worktree removed",
        _ => {}
    }
    msg
}

pub fn peek(g: &Global, args: &PeekArgs) -> Result<()> {
    let town = g.town()?;
    let rt = crate::runtime::connect(&town.config.runtime)?;
    if args.follow
        && let Some(agent) = &args.agent
    {
        let a = crate::town::polecat::get(&town, agent)?;
        let name = crate::town::sling::container_name(&town.id, &a.rig, &a.name);
        // The engine splits a long line (16 KiB) and a read ends anywhere: a value across
        // two chunks is redacted whole.
        let mut redactor =
            crate::town::secret::StreamRedactor::new(crate::town::secret::Redactor::of(&town));
        let print = |text: &str| {
            if text.is_empty() {
                Ok(())
            } else if args.raw {
                output::print_raw(text.as_bytes())
            } else {
                output::print_raw(output::safe(text).as_bytes())
            }
        };
        rt.follow_logs(&name, args.lines, &mut |chunk| print(&redactor.push(chunk)))?;
        return print(&redactor.finish());
    }
    let out = match (&args.agent, &args.bead) {
        (Some(agent), _) => crate::town::polecat::peek(&town, rt.as_ref(), agent, args.lines)?,
        (None, Some(bead)) => {
            crate::town::transcript::of_bead(&town, rt.as_ref(), bead, args.attempt, args.lines)?
        }
        (None, None) => return Err(crate::error::Error::usage("give RIG/NAME or --bead ID")),
    };
    // An agent may print its key (or be tricked into it): known values never reach the
    // screen, --raw and --json included.
    let out = crate::town::secret::redact(&town, &out);
    if g.json {
        return output::json(
            &serde_json::json!({ "agent": args.agent, "bead": args.bead, "output": out }),
        );
    }
    if args.raw {
        return output::print_raw(out.as_bytes());
    }
    output::println_out(&output::safe(out.trim_end()))
}
