//! The in-container side: the assignment file the host writes into the agent's mailbox
//! (`/gt/assignment.json`), and `gt agent run`, the container's entrypoint that refuses
//! to work for a stale generation.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where the mailbox dir is mounted inside the container.
pub const MAILBOX: &str = "/gt";

/// Exit code of `gt agent run` when its container belongs to an old generation.
pub const EXIT_STALE: i32 = 75;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Assignment {
    pub rig: String,
    pub agent: String,
    pub bead: String,
    pub title: String,
    pub body: String,
    pub branch: String,
    pub worktree: String,
    pub generation: i64,
    pub token: String,
    pub attempt: i64,
    /// Earlier dispatches of this bead, oldest first: the resume context of `gt prime`.
    #[serde(default)]
    pub history: Vec<Attempt>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub agent: String,
    pub generation: i64,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub ending: Option<String>,
    pub exit_code: Option<i64>,
    pub oom: bool,
    pub checkpoints: Vec<crate::state::checkpoints::Checkpoint>,
}

impl Assignment {
    pub fn read(mailbox: &Path) -> Result<Assignment> {
        let p = mailbox.join("assignment.json");
        let text = std::fs::read_to_string(&p).ctx(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    pub fn write(&self, mailbox: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        crate::util::write_atomic(&mailbox.join("assignment.json"), &data)
    }
}

/// Decide whether this container may run its agent: the assignment on disk must name
/// the generation this container was started for (`GT_GENERATION`).
pub fn check_generation(
    mailbox: &Path,
    mine: Option<&str>,
) -> std::result::Result<Assignment, String> {
    let a = Assignment::read(mailbox).map_err(|e| format!("no readable assignment: {e}"))?;
    let mine: i64 = mine
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| "GT_GENERATION is not set".to_string())?;
    if a.generation != mine {
        return Err(format!(
            "stale container: started for generation {mine}, but {} is now at generation {}",
            a.agent, a.generation
        ));
    }
    Ok(a)
}

/// `gt agent run -- CMD…`: check the generation, then become CMD.
pub fn run(cmd: &[String]) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let mailbox = std::env::var("GT_MAILBOX").unwrap_or_else(|_| MAILBOX.into());
    match check_generation(
        Path::new(&mailbox),
        std::env::var("GT_GENERATION").ok().as_deref(),
    ) {
        Ok(a) => {
            eprintln!(
                "gt: {} working on {} (generation {}, attempt {})",
                a.agent, a.bead, a.generation, a.attempt
            );
        }
        Err(why) => {
            eprintln!("gt: {why}; not running the agent");
            return Ok(EXIT_STALE);
        }
    }
    let Some((prog, args)) = cmd.split_first() else {
        return Err(Error::usage("gt agent run: no command given after --"));
    };
    let err = std::process::Command::new(prog).args(args).exec();
    Err(Error::io(format!("running agent command {prog}"), err))
}
pub mod mode;
pub mod request;
