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
            // Mail for another dispatch of this polecat (an earlier one's "stop for
            // now") ended with it: never shown to this one.
            if m.generation
                .is_some_and(|g| g != self.assignment.generation)
            {
                continue;
            }
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

    /// `gt prime`: everything a (re)started agent needs to know, as text, bounded
    /// (see [`PRIME_MAX`]) whatever the bead, its history and the inbox hold.
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
            title = cut(&a.title, 1 << 10, ""),
            body = if a.body.is_empty() {
                "(no description)".into()
            } else {
                cut(&a.body, PRIME_BODY, CUT_SEE_JSON)
            },
            wt = a.worktree,
            branch = a.branch,
        );
        if !a.history.is_empty() {
            s += "\nEarlier attempts at this bead (resume from their work on the branch):\n";
            let mut lines = Vec::new();
            for h in &a.history {
                lines.push(format!(
                    "- generation {} by {}, started {}: {}\n",
                    h.generation,
                    h.agent,
                    format_time(h.started_at),
                    cut(
                        h.ending.as_deref().unwrap_or("ended without a record"),
                        1 << 10,
                        ""
                    )
                ));
                for cp in h.checkpoints.iter().filter(|c| c.step == "note") {
                    lines.push(format!(
                        "    checkpoint {}: {}{}\n",
                        format_time(cp.at),
                        cut(cp.note.as_deref().unwrap_or(""), 1 << 10, ""),
                        cp.head
                            .as_deref()
                            .map(|h| format!(" (at {})", h.chars().take(12).collect::<String>()))
                            .unwrap_or_default()
                    ));
                }
            }
            s += &latest_within(lines, PRIME_HISTORY);
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
                tail_within(&r.reason, PRIME_RETURNED)
            );
        }
        s += &unread_section(self.inbox(true)?.into_iter().map(|(m, _)| m).collect());
        Ok(cut(&s, PRIME_MAX, CUT_SEE_JSON))
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

/// `gt prime`'s whole output, in bytes. Agents run `claude -p "$(gt prime)"`: one
/// argument, which Linux caps at 128 KiB (`MAX_ARG_STRLEN`); this leaves room for
/// the rest of the command.
pub const PRIME_MAX: usize = 64 << 10;
/// The bead's description in `gt prime`.
const PRIME_BODY: usize = 16 << 10;
/// Earlier attempts and their checkpoints in `gt prime` (the latest kept).
const PRIME_HISTORY: usize = 12 << 10;
/// Why the merge queue sent the work back (its end kept: a gate's last words).
const PRIME_RETURNED: usize = 12 << 10;
/// Unread mail inlined whole in `gt prime` (messages, and their bytes in all).
const MAIL_INLINE: usize = 10;
const MAIL_INLINE_BYTES: usize = 12 << 10;
/// Unread mail listed (id, sender, subject) past the inlined; the rest are counted.
const MAIL_LISTED: usize = 40;

const CUT_SEE_JSON: &str = "\n[cut here: `gt prime --json` has all of it]";

/// `text`, cut to at most `max` bytes (at a character boundary) with `note` after.
fn cut(text: &str, max: usize, note: &str) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut at = max.saturating_sub(note.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    format!("{}{note}", &text[..at])
}

/// The end of `text`, at most `max` bytes, said to be cut when it is.
fn tail_within(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut at = text.len() - max;
    while !text.is_char_boundary(at) {
        at += 1;
    }
    format!(
        "[the start is cut: `gt prime --json` has all of it]\n{}",
        &text[at..]
    )
}

/// The latest of `lines` that fit in `max` bytes, in order, with a line saying how many
/// earlier ones were left out.
fn latest_within(lines: Vec<String>, max: usize) -> String {
    let mut used = 0;
    let mut keep = 0;
    for l in lines.iter().rev() {
        if used + l.len() > max {
            break;
        }
        used += l.len();
        keep += 1;
    }
    let dropped = lines.len() - keep;
    let mut s = String::new();
    if dropped > 0 {
        s += &format!("  ({dropped} earlier line(s) left out: `gt prime --json` has them all)\n");
    }
    for l in &lines[dropped..] {
        s += l;
    }
    s
}

/// One line of agent-written text: control characters (newlines included) as spaces,
/// at most `max` bytes.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cut(&flat, max, "…")
}

/// Whether a message comes from the host's side (a person, the mayor, gt itself)
/// rather than from an agent (`rig/name`): those are inlined first.
fn from_host(m: &Mail) -> bool {
    !m.from.contains('/')
}

/// The unread mail of `gt prime`, bounded whatever the inbox holds: the first messages
/// (the host's first, then the agents', each oldest first) inlined up to
/// `MAIL_INLINE` / `MAIL_INLINE_BYTES`, the next `MAIL_LISTED` listed by id and
/// subject, the rest counted; `gt mail read ID` shows any one.
fn unread_section(mut unread: Vec<Mail>) -> String {
    if unread.is_empty() {
        return String::new();
    }
    unread.sort_by(|a, b| (!from_host(a), a.sent, &a.id).cmp(&(!from_host(b), b.sent, &b.id)));
    let mut s = format!(
        "\nUnread mail ({}; `gt mail read ID` shows one in full and marks it read):\n",
        unread.len()
    );
    let mut budget = MAIL_INLINE_BYTES;
    let mut shown = 0;
    for m in &unread {
        let head = format!(
            "--- {} from {}, {}: {}\n",
            one_line(&m.id, 160),
            one_line(&m.from, 80),
            format_time(m.sent),
            one_line(&m.subject, 200)
        );
        if shown == MAIL_INLINE || head.len() + 64 > budget {
            break;
        }
        let body = cut(
            m.body.trim_end(),
            budget - head.len(),
            "\n[cut here: `gt mail read ID` shows all of it]",
        );
        budget = budget.saturating_sub(head.len() + body.len());
        s += &head;
        s += &body;
        s += "\n";
        shown += 1;
    }
    let rest = &unread[shown..];
    if !rest.is_empty() {
        s += "More unread mail:\n";
        for m in rest.iter().take(MAIL_LISTED) {
            s += &format!(
                "- {} from {}: {}\n",
                one_line(&m.id, 160),
                one_line(&m.from, 80),
                one_line(&m.subject, 120)
            );
        }
        if rest.len() > MAIL_LISTED {
            s += &format!(
                "… and {} more: `gt mail inbox --unread` lists them all\n",
                rest.len() - MAIL_LISTED
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Attempt;

    fn ctx(dir: &std::path::Path, body: &str, history: Vec<Attempt>) -> Ctx {
        std::fs::create_dir_all(dir.join("inbox")).unwrap();
        Ctx {
            mailbox: dir.to_path_buf(),
            assignment: Assignment {
                rig: "api".into(),
                agent: "api/furiosa".into(),
                bead: "api-1".into(),
                title: "a job".into(),
                body: body.into(),
                branch: "polecat/furiosa/api-1".into(),
                worktree: "/nowhere".into(),
                generation: 7,
                token: "t".into(),
                attempt: 1,
                history,
                returned: None,
            },
            token: "t".into(),
        }
    }

    fn deliver(dir: &std::path::Path, m: &Mail) {
        std::fs::write(
            dir.join("inbox").join(format!("{}.json", m.id)),
            serde_json::to_vec(m).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn prime_is_bounded_whatever_the_inbox_holds() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path(), "do it", vec![]);
        let body = "b".repeat(16 << 10);
        for i in 0..600 {
            let from = format!("web/p{}", i % 40);
            let subject = format!("flood {i} {}", "s\n".repeat(120));
            deliver(
                d.path(),
                &Mail::new(format!("r-{i:05}"), from, "api/furiosa", subject, &body, i),
            );
        }
        // A person's message, sent last, comes first.
        deliver(
            d.path(),
            &Mail::new(
                "m-late",
                "human",
                "api/furiosa",
                "read me",
                "the plan",
                10_000,
            ),
        );
        let p = c.prime().unwrap();
        assert!(p.len() <= PRIME_MAX, "{} bytes", p.len());
        assert!(p.contains("Unread mail (601;"), "{p}");
        let first = p.find("--- ").unwrap();
        assert!(p[first..].starts_with("--- m-late from human"), "{p}");
        assert!(p.contains("the plan"));
        assert!(
            p.contains("`gt mail read ID` shows all of it"),
            "a long body is cut"
        );
        assert!(p.matches("\n--- ").count() <= MAIL_INLINE);
        assert_eq!(
            p.lines().filter(|l| l.starts_with("- r-")).count(),
            MAIL_LISTED
        );
        assert!(
            p.contains("more: `gt mail inbox --unread` lists them all"),
            "{p}"
        );
        // Agent text stays on its line: no subject starts a line of its own.
        assert!(!p.lines().any(|l| l.starts_with('s')), "{p}");
    }

    #[test]
    fn prime_shows_no_mail_of_another_dispatch() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path(), "", vec![]);
        let stop = |g| {
            Mail::new(
                format!("drain-{g}"),
                "human",
                "api/furiosa",
                format!("stop for now {g}"),
                "stop",
                1,
            )
            .for_generation(g)
        };
        deliver(d.path(), &stop(6));
        deliver(d.path(), &stop(7));
        deliver(
            d.path(),
            &Mail::new("m-1", "human", "api/furiosa", "for the polecat", "hi", 2),
        );
        let p = c.prime().unwrap();
        assert!(!p.contains("stop for now 6"), "{p}");
        assert!(p.contains("stop for now 7"), "{p}");
        assert!(p.contains("for the polecat"), "{p}");
        assert_eq!(c.inbox(false).unwrap().len(), 2);
    }

    #[test]
    fn prime_bounds_a_huge_description_and_history_keeping_the_latest() {
        let d = tempfile::tempdir().unwrap();
        let cp = |i: i64| crate::state::checkpoints::Checkpoint {
            dispatch: 1,
            step: "note".into(),
            note: Some(format!("note {i} {}", "n".repeat(4000))),
            head: None,
            at: i,
        };
        let history = (1..=30)
            .map(|g| Attempt {
                agent: "api/furiosa".into(),
                generation: g,
                started_at: g,
                ended_at: Some(g),
                ending: Some(format!("ending {g}")),
                exit_code: Some(1),
                oom: false,
                checkpoints: (0..50).map(|i| cp(g * 100 + i)).collect(),
            })
            .collect();
        let c = ctx(d.path(), &"d".repeat(1 << 20), history);
        let p = c.prime().unwrap();
        assert!(p.len() <= PRIME_MAX, "{} bytes", p.len());
        assert!(
            p.contains("`gt prime --json` has all of it"),
            "the description is cut"
        );
        assert!(p.contains("earlier line(s) left out"), "{p}");
        assert!(p.contains("note 3049"), "the latest checkpoint is kept");
        assert!(!p.contains("note 101 "), "the oldest goes first");
    }
}
