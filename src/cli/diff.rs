//! `gt diff BEAD|MR`: review a finished bead's work.

use super::{Global, output};
use crate::error::Result;

/// Show what a bead (or merge request) changed against its rig's default branch.
///
/// The unified diff against the merge base with the default branch, or with --stat the
/// files and their line counts.
///
/// The diff is the agent's text: control characters in it are shown escaped. On a
/// terminal it is coloured (not with NO_COLOR) and shown through a pager ($GT_PAGER,
/// else $PAGER, else `less -FRX`; --no-pager to print it); piped, it is plain text.
/// `gt mq diff` is the same command.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt diff api-3k9              # the bead's latest merge request (or its branch)
  gt diff api-3k9 --stat
  gt diff 12                   # merge request 12
  gt diff api-3k9 --json       # commits and files, for a program"#)]
pub struct DiffArgs {
    /// A bead id, or a merge request id (`gt mq list`).
    pub id: String,
    /// Only the files changed, with lines added and removed.
    #[arg(long)]
    pub stat: bool,
    /// Print to the terminal instead of through a pager.
    #[arg(long)]
    pub no_pager: bool,
}

pub fn run(g: &Global, a: &DiffArgs) -> Result<()> {
    let town = g.town()?;
    let change = crate::town::mq::diff(&town, &a.id, !a.stat && !g.json)?;
    if g.json {
        return output::json(&change);
    }
    let mut out = format!(
        "{} on {} ({} commit(s) over {} at {})\n",
        change.bead,
        change.branch,
        change.commits.len(),
        change.target,
        output::short(&change.base, 12)
    );
    if a.stat || change.patch.is_none() {
        let (mut ins, mut del) = (0, 0);
        for f in &change.files {
            out += &format!(" {}\n", file_line(f, " | "));
            ins += f.insertions;
            del += f.deletions;
        }
        out += &format!(" {} file(s) changed, +{ins} -{del}", change.files.len());
    } else if let Some(p) = &change.patch {
        out += &output::safe(p);
    }
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let colour = tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let text = if colour {
        coloured(out.trim_end())
    } else {
        out.trim_end().to_string()
    };
    if tty && !a.no_pager && page(&text) {
        return Ok(());
    }
    output::println_out(&text)
}

/// One changed file for a person: `PATH{sep}+INS -DEL`, the path escaped.
pub fn file_line(f: &crate::town::mq::FileStat, sep: &str) -> String {
    format!(
        "{}{sep}+{} -{}",
        output::safe_line(&f.path),
        f.insertions,
        f.deletions
    )
}

/// A unified diff with added lines green, removed red, hunk headers cyan, file headers
/// bold (the text is escaped already: only these codes reach the terminal).
fn coloured(text: &str) -> String {
    text.lines()
        .map(|l| {
            let code = if l.starts_with("+++") || l.starts_with("---") || l.starts_with("diff ") {
                "1"
            } else if l.starts_with('+') {
                "32"
            } else if l.starts_with('-') {
                "31"
            } else if l.starts_with("@@") {
                "36"
            } else {
                return l.to_string();
            };
            format!("\x1b[{code}m{l}\x1b[0m")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Show `text` through the user's pager; false when none could be started (then the
/// caller prints it).
fn page(text: &str) -> bool {
    use std::io::Write;
    let pager = std::env::var("GT_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .unwrap_or_else(|_| "less -FRX".into());
    if pager.trim().is_empty() || pager.trim() == "cat" {
        return false;
    }
    let Ok(mut child) = std::process::Command::new("sh")
        .args(["-c", &pager])
        .env(
            "LESS",
            std::env::var("LESS").unwrap_or_else(|_| "FRX".into()),
        )
        .stdin(std::process::Stdio::piped())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A pager quit early closes its end: not an error.
        let _ = stdin.write_all(text.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    child.wait().is_ok()
}
