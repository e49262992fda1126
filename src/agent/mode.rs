//! Agent mode: the commands an agent runs inside its container (`GT_AGENT` is set).
//! They read the mailbox (`/gt`) and write one request file each; nothing else.

use super::Assignment;
use super::request::{Body, DoneStatus, Request, submit};
use crate::error::{Error, Result};
use crate::state::mail::Mail;
use crate::util::{format_time, now_ms, random_hex};
use std::path::PathBuf;

pub struct Ctx {
    pub mailbox: PathBuf,
    pub assignment: Assignment,
    token: String,
}

/// True inside an agent container.
pub fn active() -> bool {
    std::env::var_os("GT_AGENT").is_some()
}

pub fn ctx() -> Result<Ctx> {
    if !active() {
        return Err(Error::usage(
            "this command runs inside an agent container (GT_AGENT is not set)",
        )
        .with_hint("on the host, use `gt bead show`, `gt mail inbox` or `gt polecat list`"));
    }
    // A clone workspace is a tmpfs the engine made (root's): its branch head must still
    // be readable (a checkpoint or done names it, and the relay pushes it first).
    crate::town::allow_agent_owned_worktrees();
    let mailbox =
        PathBuf::from(std::env::var("GT_MAILBOX").unwrap_or_else(|_| super::MAILBOX.into()));
    let assignment = Assignment::read(&mailbox)?;
    if let Ok(g) = std::env::var("GT_GENERATION")
        && g != assignment.generation.to_string()
    {
        return Err(Error::conflict(
            format!(
                "stale agent: this container is generation {g}, the assignment is generation {}",
                assignment.generation
            ),
            Some("stop working: a newer dispatch owns this bead".to_string()),
        ));
    }
    let token = crate::runtime::secret_env("GT_TOKEN").unwrap_or_else(|| assignment.token.clone());
    Ok(Ctx {
        mailbox,
        assignment,
        token,
    })
}

impl Ctx {
    fn outbox(&self) -> PathBuf {
        self.mailbox.join("outbox")
    }

    /// Write a request; returns its id once the file is durable.
    pub fn send(&self, body: Body) -> Result<String> {
        let req = Request {
            id: random_hex(16),
            agent: self.assignment.agent.clone(),
            generation: self.assignment.generation,
            token: self.token.clone(),
            created_at: now_ms(),
            body,
        };
        std::fs::create_dir_all(self.outbox()).map_err(|e| Error::io("creating the outbox", e))?;
        submit(&self.outbox(), &req)?;
        Ok(req.id)
    }

    /// Commit whatever is uncommitted in the worktree, as the agent, with its own git: the
    /// host never commits in an agent's worktree (it only imports commits).
    fn commit_leftovers(&self) -> Result<()> {
        commit_worktree(&self.assignment.worktree, "gt: uncommitted work at done")
            .map(|_| ())
            .map_err(|e| e.with_hint("commit it yourself, then run `gt done` again"))
    }

    /// The branch head of the worktree, as the agent sees it.
    pub fn head(&self) -> Option<String> {
        let repo = git2::Repository::open(&self.assignment.worktree).ok()?;
        repo.head().ok()?.target().map(|o| o.to_string())
    }

    pub fn inbox(&self, unread_only: bool) -> Result<Vec<(Mail, bool)>> {
        let dir = self.mailbox.join("inbox");
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let Ok(m) = std::fs::read(e.path())
                .map_err(|_| ())
                .and_then(|b| serde_json::from_slice::<Mail>(&b).map_err(|_| ()))
            else {
                continue;
            };
            let read = self.read_mark(&m.id).exists();
            if !(unread_only && read) {
                out.push((m, read));
            }
        }
        out.sort_by(|a, b| (a.0.sent, &a.0.id).cmp(&(b.0.sent, &b.0.id)));
        Ok(out)
    }

    pub fn mark_read(&self, id: &str) -> Result<Mail> {
        crate::town::mail::check_id(id)?;
        let path = self.mailbox.join("inbox").join(format!("{id}.json"));
        let m: Mail = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                Error::not_found(
                    format!("mail {id}"),
                    Some("`gt mail inbox` lists your mail".into()),
                )
            })?;
        let mark = self.read_mark(id);
        if let Some(dir) = mark.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating outbox/read", e))?;
        }
        crate::util::write_atomic(&mark, b"")?;
        Ok(m)
    }

    /// The inbox is the host's (read-only here): what was read is marked in the outbox,
    /// in a directory the host never reads.
    fn read_mark(&self, id: &str) -> PathBuf {
        self.outbox().join("read").join(id)
    }

    /// `gt prime`: everything a (re)started agent needs to know, as text.
    pub fn prime(&self) -> Result<String> {
        let a = &self.assignment;
        let mut s = format!(
            "You are {agent}, a polecat of rig {rig}. Attempt {attempt}, generation {generation}.\n\
             Your bead: {bead}: {title}\n\n{body}\n\n\
             Work in {wt} on branch {branch}. Commit as you go; `gt checkpoint -m NOTE` records progress,\n\
             `gt done` hands your work over (uncommitted changes are committed for you).\n",
            agent = a.agent,
            rig = a.rig,
            attempt = a.attempt,
            generation = a.generation,
            bead = a.bead,
            title = a.title,
            body = if a.body.is_empty() {
                "(no description)"
            } else {
                &a.body
            },
            wt = a.worktree,
            branch = a.branch,
        );
        if !a.history.is_empty() {
            s += "\nEarlier attempts at this bead (resume from their work on the branch):\n";
            for h in &a.history {
                s += &format!(
                    "- generation {} by {}, started {}: {}\n",
                    h.generation,
                    h.agent,
                    format_time(h.started_at),
                    h.ending.as_deref().unwrap_or("ended without a record")
                );
                for cp in h.checkpoints.iter().filter(|c| c.step == "note") {
                    s += &format!(
                        "    checkpoint {}: {}{}\n",
                        format_time(cp.at),
                        cp.note.as_deref().unwrap_or(""),
                        cp.head
                            .as_deref()
                            .map(|h| format!(" (at {})", h.chars().take(12).collect::<String>()))
                            .unwrap_or_default()
                    );
                }
            }
        }
        if let Some(r) = &a.returned {
            s += &format!(
                "\nYour work was sent back from the merge queue (merge request {}, {}), to land on {}{}:\n{}\n",
                r.merge_request,
                r.state,
                r.target,
                r.target_commit
                    .as_deref()
                    .map(|c| format!(" at {}", c.chars().take(12).collect::<String>()))
                    .unwrap_or_default(),
                r.reason
            );
        }
        let unread = self.inbox(true)?;
        if !unread.is_empty() {
            s += "\nUnread mail (`gt mail read ID`):\n";
            for (m, _) in unread {
                s += &format!("- {} from {}: {}\n", m.id, m.from, m.subject);
            }
        }
        Ok(s)
    }

    pub fn done(&self, status: DoneStatus, note: &str) -> Result<String> {
        self.commit_leftovers()?;
        self.send(Body::Done {
            status,
            note: note.to_string(),
            head: self.head(),
        })
    }
}

/// Commit everything uncommitted in `worktree` (`git add -A`, then a commit with
/// `message`, hooks off), with the agent's own git and identity; true when there was
/// something to commit. An image without git has nothing committed, and nothing to commit.
pub fn commit_worktree(worktree: &str, message: &str) -> Result<bool> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(worktree)
            .args(args)
            .output()
            .map_err(|e| Error::io("running git (is it in the agent image?)", e))
    };
    let status = match git(&["status", "--porcelain"]) {
        Ok(s) => s,
        // An image without git: nothing can have been committed, or be; the host
        // keeps a worktree with uncommitted files for a person.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if !status.status.success() {
        return Err(Error::git(format!(
            "cannot read the worktree's status: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        )));
    }
    if status.stdout.is_empty() {
        return Ok(false);
    }
    for args in [
        &["add", "-A"][..],
        &["commit", "-q", "--no-verify", "-m", message][..],
    ] {
        let out = git(args)?;
        if !out.status.success() {
            return Err(Error::git(format!(
                "cannot commit the uncommitted work (`git {}`): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(true)
}
