//! `gt diff BEAD|MR`: review a finished bead's work.

use super::{Global, output};
use crate::error::Result;

/// Show what a bead (or merge request) changed against the merge base with its rig's
/// default branch: the unified diff, or with --stat the files and their line counts.
///
/// The diff is the agent's text: control characters in it are shown escaped.
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
            out += &format!(
                " {} | +{} -{}\n",
                output::safe_line(&f.path),
                f.insertions,
                f.deletions
            );
            ins += f.insertions;
            del += f.deletions;
        }
        out += &format!(" {} file(s) changed, +{ins} -{del}", change.files.len());
    } else if let Some(p) = &change.patch {
        out += &output::safe(p);
    }
    output::println_out(out.trim_end())
}
