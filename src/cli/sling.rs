//! `gt sling`.

use super::{Global, output};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::town::Town;
use crate::town::sling::{SlingOptions, Slung};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::Mutex;

/// At most this many beads are being dispatched at once.
const PARALLEL: usize = 8;

/// Assign beads to polecats: for each, a worktree on its own branch and a container.
///
/// Each bead gets an idle polecat of its rig (or a new one), a branch
/// `polecat/<name>/<bead>`, a worktree at rigs/<rig>/polecats/<name> and a container
/// running the rig's command. A rig already running max_polecats agents leaves the bead
/// open and queued. A bead that is already hooked is refused (exit 3), as is a branch
/// that exists or is checked out elsewhere, and any bead of a drained rig (`gt drain`,
/// `gt stop`) until `gt resume`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt sling api-3k9              # a polecat, a branch polecat/<name>/api-3k9, a container
  gt sling api-3k9              # already hooked by its polecat (exits 3)
  gt sling api-7fq --polecat nux --branch fix-login   # choose both (one bead only)
  gt sling --convoy hq-c12      # every open bead of a convoy; a full rig queues the rest"#)]
pub struct SlingArgs {
    /// The beads to dispatch (dispatched concurrently).
    #[arg(required_unless_present = "convoy")]
    pub beads: Vec<String>,
    /// Sling every open bead of this convoy.
    #[arg(long, value_name = "ID", conflicts_with_all = ["branch", "polecat"])]
    pub convoy: Option<String>,
    /// Work on this new branch instead of polecat/<name>/<bead> (one bead only).
    #[arg(long)]
    pub branch: Option<String>,
    /// Use this polecat (created if new; must be idle) (one bead only).
    #[arg(long, value_name = "NAME")]
    pub polecat: Option<String>,
}

pub fn run(g: &Global, args: &SlingArgs) -> Result<()> {
    if args.beads.len() > 1 && (args.branch.is_some() || args.polecat.is_some()) {
        return Err(Error::usage("--branch and --polecat take one bead only"));
    }
    let town = g.town()?;
    let mut beads = args.beads.clone();
    if let Some(c) = &args.convoy {
        for b in crate::town::convoy::open_beads(&town, c)? {
            if !beads.contains(&b) {
                beads.push(b);
            }
        }
        if beads.is_empty() {
            return output::println_out(&format!("convoy {c} has no open beads"));
        }
    }
    let rt = crate::runtime::connect(&town.config.runtime)?;
    let rt = rt.as_ref();
    // Ctrl-C or SIGTERM from here on undoes the dispatch in progress (exit 130/143).
    crate::interrupt::install();
    let opts = SlingOptions {
        branch: args.branch.clone(),
        polecat: args.polecat.clone(),
    };
    let results = if beads.len() == 1 {
        let mut town = town;
        vec![(
            beads[0].clone(),
            crate::town::sling::sling(&mut town, rt, &beads[0], &opts),
        )]
    } else {
        many(town, rt, &beads, &opts, g.quiet)
    };
    let mut first_err = None;
    let mut ok = Vec::new();
    for (bead, r) in results {
        match r {
            Ok(s) => ok.push(s),
            Err(e) => {
                if beads.len() > 1 {
                    eprintln!("{bead}: {}", output::safe(&e.to_string()));
                }
                first_err.get_or_insert(e);
            }
        }
    }
    if g.json {
        output::json(&ok)?;
    } else if !g.quiet {
        for s in &ok {
            output::println_out(&describe(s))?;
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn describe(s: &Slung) -> String {
    match s {
        Slung::Dispatched {
            bead,
            agent,
            generation,
            branch,
            ..
        } => {
            format!("{bead} → {agent} (generation {generation}, branch {branch})")
        }
        Slung::Queued { bead, rig } => {
            format!(
                "{bead} queued: rig {rig} runs its maximum of polecats; patrol dispatches it when one frees"
            )
        }
    }
}

/// Dispatch many beads with a bounded pool of threads, each with its own connection.
fn many(
    town: Town,
    rt: &dyn Runtime,
    beads: &[String],
    opts: &SlingOptions,
    quiet: bool,
) -> Vec<(String, Result<Slung>)> {
    let root = town.root.clone();
    let mut town = town;
    let results = Mutex::new(Vec::new());
    // Slots and queue places are taken one bead after another, in the order given (a
    // claim is one short transaction); only the slow part (worktree, container) runs in
    // parallel. Interrupted: beads not yet claimed stay as they are.
    let mut claims = VecDeque::new();
    for (i, bead) in beads.iter().enumerate() {
        let r = crate::interrupt::check()
            .and_then(|()| crate::town::sling::take_slot(&mut town, bead, opts));
        match r {
            Ok(Ok(claim)) => claims.push_back((i, bead.clone(), claim)),
            Ok(Err(queued)) => push(&results, (i, bead.clone(), Ok(queued))),
            Err(e) => push(&results, (i, bead.clone(), Err(e))),
        }
    }
    drop(town);
    let launches = claims.len();
    let queue = Mutex::new(claims);
    let bar = (std::io::stderr().is_terminal() && !quiet).then(|| {
        let b = indicatif::ProgressBar::new(launches as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(launches) {
            s.spawn(|| {
                let mut town = Town::open_at(root.clone());
                while let Some((i, bead, claim)) = queue.lock().ok().and_then(|mut q| q.pop_front())
                {
                    // Interrupted: `launch` undoes the claim before its first step.
                    let r = match &mut town {
                        Ok(t) => crate::town::sling::launch(t, rt, claim),
                        Err(e) => Err(Error::Other(e.to_string())),
                    };
                    if let Some(b) = &bar {
                        b.inc(1);
                        b.set_message(bead.clone());
                    }
                    if let Ok(mut v) = results.lock() {
                        v.push((i, bead, r));
                    }
                }
            });
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut v = results.into_inner().unwrap_or_default();
    v.sort_by_key(|(i, _, _)| *i);
    v.into_iter().map(|(_, b, r)| (b, r)).collect()
}

fn push<T>(v: &Mutex<Vec<T>>, item: T) {
    if let Ok(mut v) = v.lock() {
        v.push(item);
    }
}
