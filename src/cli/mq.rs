//! `gt mq list | show | approve | reject | run`: the merge queue.

use super::{Global, output};
use crate::error::{Error, Result};
use crate::state::merge_requests::MrState;

/// The merge queue: finished work, reviewed and landed on each rig's default branch.
///
/// Every bead that ends done records a merge request (its branch at the commit the
/// agent handed over). What happens next is the rig's policy (`gt rig set R --merge`):
/// review (a person approves with `gt mq approve`; the default of a new rig), auto, or
/// off (recorded only). Patrol lands approved requests oldest first, one at a time per
/// rig: it checks the change applies, builds target + change as the rig's
/// --merge-style says, runs the rig's --test-command on it in a container, and moves
/// the target (and the remote's) only if nothing moved meanwhile. A conflict, a failing
/// gate or a rejection sends the work back to its bead, with the reason in `gt prime`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt mq list                      # every merge request, with why it waits
  gt mq list --state needs-review # what waits for you
  gt mq diff api-3k9              # read the change (the same as gt diff api-3k9)
  gt mq approve api-3k9           # let it land
  gt mq reject api-7fq -m "add a test for the empty password"
  gt mq run                       # land what can land now, waiting for its gates"#)]
pub struct MqArgs {
    #[command(subcommand)]
    pub command: MqCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum MqCommand {
    /// List the live merge queue, oldest first, with each one's state and why it waits.
    ///
    /// By default: what waits (needs-review, queued, testing) and what ended but still
    /// needs a person (failed for good: its bead is out of attempts; merged but not in
    /// your repository yet). `--all` shows the history too; `--state` picks states.
    /// States: queued (waits its turn), needs-review (waits for `gt mq approve`),
    /// testing (being landed), merged, conflict / failed / rejected (sent back to its
    /// bead), superseded (newer work of its bead, or its bead closed).
    #[command(after_long_help = r#"Examples:
  gt mq list                        # every merge request, with why it waits
  gt mq list --state needs-review   # what waits for you
  gt mq list --rig api --state merged --json"#)]
    List {
        /// Only this rig's.
        #[arg(long)]
        rig: Option<String>,
        /// Only merge requests in this state (repeatable; any of the history).
        #[arg(long, value_name = "STATE", value_parser = STATES)]
        state: Vec<String>,
        /// Every merge request, merged, sent back and superseded ones included.
        #[arg(long)]
        all: bool,
    },
    /// Show a merge request: its bead, branch, commits, files, where it stands and why,
    /// and its history.
    #[command(after_long_help = r#"Examples:
  gt mq show api-3k9            # the bead's latest merge request
  gt mq show 12                 # merge request 12"#)]
    Show {
        /// A merge request id, or a bead id (its latest merge request).
        id: String,
    },
    /// Let a merge request that needs review land (it keeps its place in the queue).
    #[command(after_long_help = r#"Examples:
  gt diff api-3k9               # read it first
  gt mq approve api-3k9         # it lands in a coming patrol pass, or now:
  gt mq run"#)]
    Approve {
        /// A merge request id, or a bead id (its latest merge request).
        id: String,
    },
    /// Send a merge request back: its bead reopens on its branch and is dispatched
    /// again, with WHY in the agent's prime.
    #[command(after_long_help = r#"Examples:
  gt mq reject api-3k9 -m "add a test for the empty password"
  gt bead show api-3k9          # open again, queued, with the reason"#)]
    Reject {
        /// A merge request id, or a bead id (its latest merge request).
        id: String,
        /// Why: what the agent should change.
        #[arg(short = 'm', long = "message", value_name = "WHY")]
        why: String,
    },
    /// Land what can land now (as a patrol pass does), waiting for running gates.
    ///
    /// Exits 0 when nothing more can move now; prints what merged, what was sent back
    /// and what still waits. Does nothing while a patrol pass runs (it lands too).
    #[command(after_long_help = r#"Examples:
  gt mq run                     # land what can land now, waiting for gates
  gt mq run --wait 0s           # do not wait for gates still running"#)]
    Run {
        /// How long to wait for gates still running, e.g. 10m (0s: do not wait).
        #[arg(long, value_name = "DURATION", default_value = "30m")]
        wait: String,
    },
    /// Show what a merge request (or bead) changed: the same command as `gt diff`.
    #[command(after_long_help = r#"Examples:
  gt mq diff api-3k9            # the bead's latest merge request, against its merge base
  gt mq diff api-3k9 --stat     # only the files, with lines added and removed
  gt mq diff 12 --no-pager      # merge request 12, printed"#)]
    Diff(super::diff::DiffArgs),
}

const STATES: [&str; 8] = [
    "queued",
    "needs-review",
    "testing",
    "merged",
    "conflict",
    "failed",
    "rejected",
    "superseded",
];

pub fn run(g: &Global, a: &MqArgs) -> Result<()> {
    match &a.command {
        MqCommand::List { rig, state, all } => list(g, rig.as_deref(), state, *all),
        MqCommand::Show { id } => show(g, id),
        MqCommand::Diff(d) => super::diff::run(g, d),
        MqCommand::Approve { id } => {
            let mut town = g.town()?;
            let before = crate::town::mq::find(&town, id)?.state;
            let mr = crate::town::mq::approve(&mut town, id)?;
            if g.json {
                return output::json(&mr);
            }
            output::println_out(&if before == MrState::NeedsReview {
                format!(
                    "approved merge request {} ({}): it lands in a coming patrol pass (or `gt mq run`)",
                    mr.id, mr.bead
                )
            } else {
                format!(
                    "merge request {} ({}) is {} already",
                    mr.id,
                    mr.bead,
                    mr.state.as_str()
                )
            })
        }
        MqCommand::Reject { id, why } => {
            let mut town = g.town()?;
            let mr = crate::town::mq::reject(&mut town, id, why)?;
            if g.json {
                return output::json(&mr);
            }
            output::println_out(&format!(
                "rejected merge request {}: bead {} is reopened on {} and will be dispatched again with your reason",
                mr.id,
                mr.bead,
                output::safe_line(&mr.branch)
            ))
        }
        MqCommand::Run { wait } => {
            let wait = crate::util::parse_duration(wait).ok_or_else(|| {
                Error::usage(format!("--wait {wait:?} is not a duration"))
                    .with_hint("use e.g. 0s, 90s or 10m")
            })?;
            let mut town = g.town()?;
            let rt = crate::runtime::connect(&town.config.runtime)?;
            let Some(r) = crate::town::mq::run(&mut town, rt.as_ref(), wait)? else {
                return output::println_out(
                    "a patrol pass is running and lands the queue itself; nothing done",
                );
            };
            if g.json {
                return output::json(&r);
            }
            let mut lines = Vec::new();
            lines.extend(r.merged.iter().map(|m| format!("merged: {m}")));
            lines.extend(r.returned.iter().map(|m| format!("sent back: {m}")));
            lines.extend(r.waiting.iter().map(|m| format!("waits: {m}")));
            lines.extend(r.errors.iter().map(|m| format!("error: {m}")));
            if lines.is_empty() {
                lines.push("nothing to land".into());
            }
            output::println_out(
                &lines
                    .iter()
                    .map(|l| output::safe_line(l))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )?;
            if r.errors.is_empty() {
                Ok(())
            } else {
                Err(Error::Other(format!(
                    "{} merge request(s) could not move; see above",
                    r.errors.len()
                )))
            }
        }
    }
}

fn list(g: &Global, rig: Option<&str>, states: &[String], all: bool) -> Result<()> {
    let town = g.town()?;
    let states: Vec<MrState> = states.iter().filter_map(|s| s.parse().ok()).collect();
    let which = if all {
        crate::town::mq::Listing::All
    } else {
        crate::town::mq::Listing::Live
    };
    let list = crate::town::mq::list(&town, rig, &states, which)?;
    if g.json {
        return output::json(&list);
    }
    if list.is_empty() {
        return output::println_out(if all || !states.is_empty() {
            "no merge requests"
        } else {
            "nothing in the queue (`gt mq list --all` shows the history)"
        });
    }
    let mut t = output::Table::new(&["id", "bead", "rig", "state", "commit", "why"]);
    for l in &list {
        let m = &l.mr;
        t.row(vec![
            m.id.to_string(),
            m.bead.clone(),
            m.rig.clone(),
            m.state.as_str().to_string(),
            output::short(&m.commit, 12).to_string(),
            l.why.clone(),
        ]);
    }
    t.print()
}

fn show(g: &Global, id: &str) -> Result<()> {
    let town = g.town()?;
    let s = crate::town::mq::show(&town, id)?;
    if g.json {
        return output::json(&s);
    }
    let c = &s.change;
    let m = &s.listed.mr;
    let mut out = format!(
        "merge request {}: bead {} ({}), {}\nstate:   {} ({})\nbranch:  {}\ncommit:  {}\ntarget:  {} (merge base {})\npushed:  {}\n",
        m.id,
        m.bead,
        s.bead_status,
        output::safe_line(&s.listed.title),
        m.state.as_str(),
        output::safe_line(&s.listed.why),
        output::safe_line(&c.branch),
        c.commit,
        c.target,
        output::short(&c.base, 12),
        m.pushed_to
            .as_deref()
            .map(output::safe_line)
            .unwrap_or_else(|| "no remote".into()),
    );
    if let Some(mc) = &m.merged_commit {
        out += &format!("merged:  {mc}\n");
    }
    if let Some(r) = &m.reason
        && r.lines().count() > 1
    {
        out += "reason:\n";
        for l in r.lines() {
            out += &format!("  {}\n", output::safe_line(l));
        }
    }
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
        out += &format!("  {}\n", super::diff::file_line(f, " "));
    }
    out += "history:\n";
    for h in &s.history {
        let mut data = h.data.clone();
        if let Some(o) = data.as_object_mut() {
            o.remove("mr");
        }
        out += &format!(
            "  {} {} {} {}\n",
            output::time(h.at),
            h.actor,
            h.kind,
            output::safe_line(&data.to_string())
        );
    }
    output::println_out(out.trim_end())
}
