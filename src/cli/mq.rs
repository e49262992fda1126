//! `gt mq list | show | approve | reject | run`: the merge queue.

use super::{Global, output};
use crate::error::Result;

/// Merge requests: the branches finished work landed on.
#[derive(clap::Args, Debug)]
pub struct MqArgs {
    #[command(subcommand)]
    pub command: MqCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum MqCommand {
    /// List merge requests, oldest first.
    List {
        /// Only this rig's.
        #[arg(long)]
        rig: Option<String>,
    },
    /// Show a merge request: its bead, branch, commits and files, and where it stands.
    Show {
        /// A merge request id, or a bead id (its latest merge request).
        id: String,
    },
}

fn mq_show(g: &Global, id: &str) -> Result<()> {
    let town = g.town()?;
    let s = crate::town::mq::show(&town, id)?;
    if g.json {
        return output::json(&s);
    }
    let c = &s.change;
    let mut out = format!(
        "merge request {}: bead {} ({}), {}\nbranch:  {}\ncommit:  {}\ntarget:  {} (merge base {})\npushed:  {}\n",
        s.mr.id,
        s.mr.bead,
        s.bead_status,
        s.state,
        output::safe_line(&c.branch),
        c.commit,
        c.target,
        output::short(&c.base, 12),
        s.mr.pushed_to
            .as_deref()
            .map(output::safe_line)
            .unwrap_or_else(|| "no remote".into()),
    );
    out += &format!("commits ({}):\n", c.commits.len());
    for k in &c.commits {
        out += &format!(
            "  {} {} ({})\n",
            output::short(&k.id, 12),
            output::safe_line(&k.subject),
            output::safe_line(&k.author)
        );
    }
    out += &format!("files ({}):\n", c.files.len());
    for f in &c.files {
        out += &format!(
            "  {} +{} -{}\n",
            output::safe_line(&f.path),
            f.insertions,
            f.deletions
        );
    }
    output::println_out(out.trim_end())
}

pub fn run(g: &Global, a: &MqArgs) -> Result<()> {
    let rig = match &a.command {
        MqCommand::List { rig } => rig,
        MqCommand::Show { id } => return mq_show(g, id),
    };
    let town = g.town()?;
    if let Some(r) = rig {
        crate::town::rig::get(&town, r)?;
    }
    let list = crate::state::merge_requests::list(town.db.conn(), rig.as_deref())
        .map_err(|e| town.db_err(e))?;
    if g.json {
        return output::json(&list);
    }
    if list.is_empty() {
        return output::println_out("no merge requests");
    }
    let mut t = output::Table::new(&["bead", "rig", "commit", "pushed to", "branch"]);
    for m in &list {
        t.row(vec![
            m.bead.clone(),
            m.rig.clone(),
            output::short(&m.commit, 12).to_string(),
            output::opt(&m.pushed_to),
            m.branch.clone(),
        ]);
    }
    t.print()
}
