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
    /// Why the merge queue (or a reviewer) sent this bead's work back, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Returned>,
}

/// Work sent back by the merge queue: a conflict, a failing gate, or a rejection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Returned {
    pub merge_request: i64,
    /// `conflict`, `failed` or `rejected`.
    pub state: String,
    /// What to do, with the conflicting files or the gate's output.
    pub reason: String,
    /// The target branch, and the commit of it the work was measured against.
    pub target: String,
    pub target_commit: Option<String>,
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

/// How an agent command ended, as `gt agent run` saw it from inside the container
/// (`/gt/outbox/ending`, data the host reads bounded; an agent can forge only its own). Docker's own `OOMKilled` is unreliable: containerd drops the
/// OOM event when the container's cgroup is gone before the event is handled, which a
/// quick exit after an OOM kill makes likely. The kernel's `oom_kill` counter of the
/// container's memory cgroup, read while the container still lives, is not.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Ending {
    pub generation: i64,
    pub exit_code: i32,
    /// The kernel OOM-killed a process of the container while the command ran.
    pub oom: bool,
}

impl Ending {
    /// In the outbox, without the `.json` of a request.
    const FILE: &'static str = "ending";

    /// The ending recorded in `outbox` for `generation`, if that generation recorded one.
    pub fn read(outbox: &Path, generation: i64) -> Option<Ending> {
        let data = crate::untrusted::Dir::open(outbox)
            .ok()?
            .read(Self::FILE, 4096)
            .ok()?;
        serde_json::from_slice::<Ending>(&data)
            .ok()
            .filter(|e| e.generation == generation)
    }

    fn write(&self, mailbox: &Path) -> Result<()> {
        self.write_to(&mailbox.join("outbox"))
    }

    /// Record it in `outbox` (the host's spool, for `gt serve`).
    pub fn write_to(&self, outbox: &Path) -> Result<()> {
        let data = serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))?;
        crate::util::write_atomic(&outbox.join(Self::FILE), &data)
    }
}

/// The `oom_kill` count of the memory cgroup under `root` (cgroup v2 `memory.events`, or
/// v1 `memory/memory.oom_control`); None when neither is readable.
pub fn oom_kills(root: &Path) -> Option<u64> {
    ["memory.events", "memory/memory.oom_control"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
        .find_map(|text| {
            text.lines().find_map(|l| match l.split_once(' ') {
                Some(("oom_kill", n)) => n.trim().parse().ok(),
                _ => None,
            })
        })
}

/// Keep SIGTERM, SIGINT and SIGHUP from killing `gt agent run` before its command: the
/// container's init sends them to the whole process group, so the command receives them
/// and decides when to end, and we stay to record how it did. (Handlers, unlike an
/// ignored disposition, are reset for the command at exec.)
fn outlive_stop_signals() -> Option<(tokio::runtime::Runtime, Vec<tokio::signal::unix::Signal>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let signals = rt.block_on(async {
        [
            SignalKind::terminate(),
            SignalKind::interrupt(),
            SignalKind::hangup(),
        ]
        .into_iter()
        .filter_map(|k| signal(k).ok())
        .collect()
    });
    Some((rt, signals))
}

/// `gt agent run -- CMD…`: check the generation, run CMD, and record how it ended
/// (exit code, OOM kill) in the mailbox before exiting with CMD's code. The container
/// runs with Docker's init as PID 1, which reaps orphans and forwards signals to us.
pub fn run(cmd: &[String]) -> Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    let mailbox = std::env::var("GT_MAILBOX").unwrap_or_else(|_| MAILBOX.into());
    let mailbox = Path::new(&mailbox);
    // Clone mode: nothing of the host is mounted; the box and the branch come from
    // `gt serve`, and everything the agent sends goes back there.
    let mut relay = None;
    if std::env::var_os("GT_ENDPOINT").is_some() {
        match remote::prepare(mailbox, Path::new(remote::SECRETS)) {
            Ok((r, _)) => relay = Some(r),
            Err(remote::Stop(code, why)) => {
                eprintln!("gt: {why}; not running the agent");
                return Ok(code);
            }
        }
    }
    let a = match check_generation(mailbox, std::env::var("GT_GENERATION").ok().as_deref()) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("gt: {why}; not running the agent");
            return Ok(EXIT_STALE);
        }
    };
    eprintln!(
        "gt: {} working on {} (generation {}, attempt {})",
        a.agent, a.bead, a.generation, a.attempt
    );
    let Some((prog, args)) = cmd.split_first() else {
        return Err(Error::usage("gt agent run: no command given after --"));
    };
    // The rig's secrets: read-only files, set for the agent command only (never in the
    // container's config). Names only in what is printed.
    let secrets_dir = match relay {
        Some(_) => remote::SECRETS,
        None => crate::town::secret::MOUNT,
    };
    let (secrets, skipped) = crate::town::secret::mounted(Path::new(secrets_dir));
    if !skipped.is_empty() {
        eprintln!(
            "gt: ignored {} entr(ies) in {} that are not secret files: {}",
            skipped.len(),
            secrets_dir,
            skipped.join(", ")
        );
    }
    let mut command = std::process::Command::new(prog);
    command.args(args);
    for (name, value) in &secrets {
        use std::os::unix::ffi::OsStrExt;
        command.env(name, std::ffi::OsStr::from_bytes(value));
    }
    // Out of memory, the kernel takes the agent command (and what it starts), never
    // `gt agent run`: gt must live to record the OOM kill, which on a Swarm node only it
    // can report (under a small limit it would otherwise be the one taken: its loader
    // maps ~15 MB). Raising one's own OOM score needs no privilege; best effort.
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook runs in the forked child before exec and makes only
        // async-signal-safe calls (open, write, close) on a static path.
        unsafe {
            command.pre_exec(|| {
                let fd = libc::open(
                    c"/proc/self/oom_score_adj".as_ptr(),
                    libc::O_WRONLY | libc::O_CLOEXEC,
                );
                if fd >= 0 {
                    let v = b"1000";
                    libc::write(fd, v.as_ptr().cast(), v.len());
                    libc::close(fd);
                }
                Ok(())
            });
        }
    }
    let _shield = outlive_stop_signals();
    let cgroup = Path::new("/sys/fs/cgroup");
    let before = oom_kills(cgroup).unwrap_or(0);
    let mut child = command
        .spawn()
        .map_err(|e| Error::io(format!("running agent command {prog}"), e))?;
    let status = match relay.as_mut() {
        Some(r) => match remote::supervise(r, &mut child, std::time::Duration::from_millis(200)) {
            Ok(s) => s,
            Err(remote::Stop(code, why)) => {
                eprintln!("gt: {why}; the agent was stopped");
                return Ok(code);
            }
        },
        None => child
            .wait()
            .map_err(|e| Error::io(format!("waiting for agent command {prog}"), e))?,
    };
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let oom = oom_kills(cgroup).is_some_and(|after| after > before);
    // A clone dies with its container: what the agent left uncommitted is committed
    // (on its branch, as the agent) and pushed, whatever the reason it ended; unless it
    // said done, which handed over what it had then (as with a mounted worktree, where
    // later leftovers are not taken either).
    let clone_leftovers = relay.as_ref().is_some_and(|r| !r.done_sent);
    if stopping(mailbox, a.generation) || clone_leftovers {
        commit_work_in_progress(&a);
    }
    let ending = Ending {
        generation: a.generation,
        exit_code,
        oom,
    };
    if oom {
        eprintln!("gt: the agent was OOM-killed (exit code {exit_code})");
    }
    if let Some(r) = relay.as_mut() {
        let sent = r
            .flush_outbox()
            .and_then(|_| r.push(None))
            .and_then(|()| r.send_ending(&ending));
        if let Err(remote::Stop(code, why)) = sent {
            eprintln!("gt: {why}");
            return Ok(code);
        }
        return Ok(exit_code);
    }
    if let Err(e) = ending.write(mailbox) {
        eprintln!("gt: could not record how the agent ended: {e}");
    }
    Ok(exit_code)
}
/// Whether the host is stopping this generation (`gt drain`, `gt stop`): it wrote
/// the stop marker in the mailbox naming it.
fn stopping(mailbox: &Path, generation: i64) -> bool {
    std::fs::read(mailbox.join(crate::town::drain::STOP_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::town::drain::StopMarker>(&b).ok())
        .is_some_and(|m| m.generation == generation)
}

/// The crew is being stopped (or, in clone mode, the container is about to go): what
/// the agent left uncommitted is committed on its branch (as the agent), so the next
/// attempt resumes from it and nothing is lost.
fn commit_work_in_progress(a: &Assignment) {
    let msg = format!(
        "gt: work in progress, saved when the agent ended (generation {})",
        a.generation
    );
    match mode::commit_worktree(&a.worktree, &msg) {
        Ok(true) => eprintln!("gt: the agent left uncommitted work: committed on its branch"),
        Ok(false) => {}
        Err(e) => eprintln!("gt: could not commit the work in progress: {e}"),
    }
}

pub mod mode;
pub mod remote;
pub mod request;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_reads_cgroup_v1_and_v2() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(oom_kills(d.path()), None);
        std::fs::create_dir(d.path().join("memory")).unwrap();
        std::fs::write(
            d.path().join("memory/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kills(d.path()), Some(2));
        std::fs::write(
            d.path().join("memory.events"),
            "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(oom_kills(d.path()), Some(1));
    }

    #[test]
    fn an_ending_of_another_generation_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let e = Ending {
            generation: 3,
            exit_code: 137,
            oom: true,
        };
        std::fs::create_dir(d.path().join("outbox")).unwrap();
        e.write(d.path()).unwrap();
        let outbox = d.path().join("outbox");
        assert_eq!(Ending::read(&outbox, 3), Some(e));
        assert_eq!(Ending::read(&outbox, 4), None);
    }
}
