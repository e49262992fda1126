//! `gt completions SHELL`, and the generated files checked in under completions/ and
//! man/ (a test regenerates them and fails when they are stale).

use super::{Cli, Global, output};
use crate::error::{Error, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

/// Print a shell completion script (bash, zsh, fish, elvish or powershell).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt completions bash > ~/.local/share/bash-completion/completions/gt
  gt completions zsh > ~/.zfunc/_gt
  gt completions fish > ~/.config/fish/completions/gt.fish"#)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

pub fn completions(_g: &Global, args: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "gt", &mut buf);
    output::println_out(String::from_utf8_lossy(&buf).trim_end())
}

/// Every generated doc file: (path relative to the repository root, contents).
pub fn generated_files() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut cmd = Cli::command();
    cmd.build();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "gt", &mut buf);
        let name = match shell {
            Shell::Bash => "gt.bash",
            Shell::Zsh => "_gt",
            _ => "gt.fish",
        };
        files.push((PathBuf::from("completions").join(name), buf));
    }
    man_pages(&cmd, "gt", &mut files)?;
    Ok(files)
}

/// Exit codes, as `gt --help` and gt(1)'s EXIT STATUS list them (README.md, "Exit codes").
pub const EXIT_STATUS: &[(&str, &str, &str)] = &[
    ("0", "ok", ""),
    (
        "1",
        "error",
        "the message says what, and a hint what to run next; also a .gt/town.db that is \
         not gt's (empty, another application's, corrupt, or from a newer gt), refused \
         untouched, and a write that found the database locked for 30 s",
    ),
    (
        "2",
        "usage: a bad name, flag or config value",
        "out of range included, naming the flag or key; or a bead that cannot be slung",
    ),
    (
        "3",
        "conflict: lost a race (already hooked, branch in use, version changed)",
        "or refused by a drain (gt drain, gt stop) until gt resume",
    ),
    (
        "4",
        "not found: no such town, rig, bead, polecat or mail",
        "",
    ),
    ("5", "the container runtime (Docker) is unavailable", ""),
    (
        "130, 143",
        "gt sling stopped by Ctrl-C or SIGTERM",
        "it undid what it had started and said what",
    ),
    (
        "69, 75",
        "gt agent run (in a container): gt serve unreachable, or a stale generation",
        "gt serve stayed unreachable for serve.patience (69), or the container belongs to a \
         generation that is over (75); patrol records either as the dispatch's reason",
    ),
];

/// The environment gt reads (gt(1)'s ENVIRONMENT).
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "GT_TOWN",
        "The town directory, as --town gives it. Default: the nearest parent of the working \
         directory that holds .gt/.",
    ),
    (
        "DOCKER_HOST",
        "The Docker engine (or Swarm manager) gt talks to; default \
         unix:///var/run/docker.sock. `gt patrol install` writes it into the cron or systemd \
         entry.",
    ),
    (
        "NO_COLOR",
        "When set to a non-empty value, no colours, even on a terminal. Colours are only \
         ever used on a terminal.",
    ),
    (
        "GT_PAGER, PAGER, LESS",
        "The pager of `gt diff` on a terminal: $GT_PAGER, else $PAGER, else `less -FRX` \
         (LESS=FRX unless LESS is set); empty or `cat`: no pager.",
    ),
    (
        "GT_LOG",
        "A tracing filter for diagnostics on stderr (e.g. gt=debug), instead of the level -v \
         and -q choose.",
    ),
    (
        "GT_CRONTAB",
        "The crontab command `gt patrol install` and `uninstall` run (default: crontab).",
    ),
    (
        "GT_SYSTEMCTL",
        "The systemctl command `gt patrol install --systemd` runs (default: systemctl).",
    ),
    (
        "XDG_CONFIG_HOME",
        "Where the systemd user units go: $XDG_CONFIG_HOME/systemd/user (default: \
         ~/.config/systemd/user).",
    ),
    (
        "XDG_RUNTIME_DIR",
        "Where a rootless Docker engine keeps its socket ($XDG_RUNTIME_DIR/docker.sock): \
         when no engine answers, gt's hint names it.",
    ),
    (
        "GT_AGENT",
        "Set by gt inside an agent's container (RIG/NAME): it makes `gt prime`, `gt \
         checkpoint`, `gt done`, `gt mail` and `gt escalate` speak as that agent through its \
         mailbox. Never set it on the host.",
    ),
    (
        "GT_BEAD, GT_BRANCH, GT_GENERATION, GT_MAILBOX",
        "Set by gt inside an agent's container: its bead, branch, dispatch generation and \
         mailbox directory (/gt). A container whose GT_GENERATION is not the assignment's \
         runs nothing (exit 75).",
    ),
    (
        "GT_ENDPOINT, GT_ENDPOINT_CA, GT_ENDPOINT_PATIENCE, GT_TOKEN",
        "Set by gt in a clone-workspace agent's container: the `gt serve` URL, the town CA \
         it trusts, how long to retry it (serve.patience), and the dispatch token.",
    ),
    (
        "GT_MR, GT_BEAD (in a gate)",
        "Set for a rig's --test-command (with CI=true, HOME=/tmp and the rig's --env): \
         the merge request and the bead being landed.",
    ),
];

/// The files of a town (gt(1)'s FILES).
const FILES: &[(&str, &str)] = &[
    (
        "gt.toml",
        "Town-wide defaults and settings, every key explained (written by `gt init`). A \
         rig's own settings live in the database (`gt rig add`, `gt rig set`).",
    ),
    (
        ".gt/town.db",
        "All state: rigs, beads, polecats, dispatches, mail, merge requests and the event log \
         (SQLite, WAL). Only a file carrying gt's application id is ever written.",
    ),
    (
        ".gt/secrets/NAME",
        "A secret's value (directory 0700, file 0600), set by `gt secret set`.",
    ),
    (
        ".gt/patrol.log",
        "The output of the patrol passes cron runs (`gt patrol install`).",
    ),
    (
        ".gt/serve/",
        "The town CA and `gt serve`'s certificate and key (0600), and its cached clone \
         packs.",
    ),
    (
        "rigs/RIG/repo",
        "The rig's own clone of its source: agents' branches, the default branch the merge \
         queue lands on.",
    ),
    (
        "rigs/RIG/polecats/NAME",
        "A polecat's git worktree, on its bead's branch polecat/NAME/BEAD.",
    ),
    (
        "rigs/.removed-RIG-TIME",
        "A removed rig's files, moved aside by `gt rig remove`, never deleted.",
    ),
    (
        "agents/RIG/NAME/",
        "A polecat's mailbox, mounted at /gt in its container: assignment.json and inbox/ \
         (read-only to it), outbox/ (its requests), and its private git state; rejected/ \
         keeps refused requests (host only).",
    ),
    (
        "transcripts/RIG/BEAD/",
        "Each dispatch's output, kept when its container ends (the last 1 MiB, 10 attempts \
         per bead): `gt peek`.",
    ),
];

/// `Exit codes:` and the table, for `gt --help`.
pub fn exit_codes_help() -> String {
    let mut s = String::from("Exit codes:\n");
    for (code, what, _) in EXIT_STATUS {
        s.push_str(&format!("  {code:<8} {what}\n"));
    }
    s.push_str(
        "\nReference (exit codes, environment, files): man gt; every command: gt CMD --help",
    );
    s
}

/// Text for a man page (roff): backslashes and hyphens escaped, no line starting a
/// request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn table_section(title: &str, rows: &[(&str, &str)]) -> String {
    let mut out = format!(".SH \"{title}\"\n");
    for (term, what) in rows {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(term), roff(what)));
    }
    out
}

/// One example: the command (continuation lines joined), and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub command: String,
    pub comment: String,
}

/// The lines of a command's "Examples:" block (`after_long_help`), as written.
fn example_lines(cmd: &clap::Command, name: &str) -> Result<Vec<String>> {
    let text = cmd
        .get_after_long_help()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("Examples:") {
        return Err(Error::Other(format!(
            "{name} has no examples: give its clap::Args an after_long_help starting \
             \"Examples:\", one real command a line with a short comment"
        )));
    }
    // The block ends where an unindented line starts another (gt's exit codes).
    let lines: Vec<String> = lines
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.strip_prefix("  ").unwrap_or(l).trim_end().to_string())
        .collect();
    if !lines
        .iter()
        .any(|l| l.starts_with("gt ") || l.contains("| gt "))
    {
        return Err(Error::Other(format!(
            "{name}'s examples have no gt command"
        )));
    }
    Ok(lines)
}

/// Where a shell comment starts in `line`: a `#` after a space, outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev == ' ' => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

/// Every man page's examples, by page name (`gt-sling`): commands whose lines end with
/// `\` are joined with the next; a comment is what follows a ` #` outside quotes; a line
/// that is only a comment is not an example.
pub fn examples() -> Result<Vec<(String, Vec<Example>)>> {
    fn walk(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<Example>)>) -> Result<()> {
        let mut list = Vec::new();
        let mut pending = String::new();
        for line in example_lines(cmd, name)? {
            if line.trim_start().starts_with('#') && pending.is_empty() {
                continue;
            }
            if let Some(head) = line.strip_suffix('\\') {
                pending.push_str(head.trim_end());
                pending.push(' ');
                continue;
            }
            let full = format!("{pending}{}", line.trim_start());
            pending.clear();
            let (command, comment) = match comment_start(&full) {
                Some(i) => (full[..i].trim(), full[i + 1..].trim()),
                None => (full.trim(), ""),
            };
            list.push(Example {
                command: command.to_string(),
                comment: comment.to_string(),
            });
        }
        out.push((name.to_string(), list));
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            walk(sub, &format!("{name}-{}", sub.get_name()), out)?;
        }
        Ok(())
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, "gt", &mut out)?;
    Ok(out)
}

/// EXAMPLES: the command's own (`after_long_help`, "Examples:"); a command without them
/// is an error (the docs test fails), never a made-up placeholder.
fn examples_section(cmd: &clap::Command, name: &str) -> Result<String> {
    let mut out = String::from(".SH EXAMPLES\n.nf\n");
    for l in example_lines(cmd, name)? {
        let l = l.replace('\\', "\\e");
        if l.starts_with('.') || l.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(".fi\n");
    Ok(out)
}

/// SUBCOMMANDS, each a page that exists (clap_mangen's own lists `help`, which has none).
fn subcommands_section(cmd: &clap::Command, name: &str) -> String {
    let mut out = String::from(".SH SUBCOMMANDS\n");
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        out.push_str(&format!(
            ".TP\n{}(1)\n{}\n",
            roff(&format!("{name}-{}", sub.get_name())),
            roff(&about)
        ));
    }
    out
}

fn man_pages(cmd: &clap::Command, name: &str, files: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    let mut buf = Vec::new();
    let named = cmd.clone().name(clap::builder::Str::from(
        name.to_string().leak() as &'static str
    ));
    let man = clap_mangen::Man::new(named.clone());
    let io = |e: std::io::Error| Error::Other(e.to_string());
    man.render_title(&mut buf).map_err(io)?;
    man.render_name_section(&mut buf).map_err(io)?;
    man.render_synopsis_section(&mut buf).map_err(io)?;
    man.render_description_section(&mut buf).map_err(io)?;
    if named.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf).map_err(io)?;
    }
    if named
        .get_subcommands()
        .any(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        buf.extend_from_slice(subcommands_section(cmd, name).as_bytes());
    }
    buf.extend_from_slice(examples_section(cmd, name)?.as_bytes());
    if name == "gt" {
        let exit: Vec<(&str, String)> = EXIT_STATUS
            .iter()
            .map(|(code, what, more)| {
                let text = match (more.is_empty(), what.contains(':')) {
                    (true, _) => what.to_string(),
                    (false, true) => format!("{what}; {more}"),
                    (false, false) => format!("{what}: {more}"),
                };
                (*code, text)
            })
            .collect();
        let exit: Vec<(&str, &str)> = exit.iter().map(|(c, t)| (*c, t.as_str())).collect();
        buf.extend_from_slice(table_section("EXIT STATUS", &exit).as_bytes());
        buf.extend_from_slice(table_section("ENVIRONMENT", ENVIRONMENT).as_bytes());
        let mut files_text = table_section("FILES", FILES);
        files_text.insert_str(
            files_text.find('\n').map_or(0, |i| i + 1),
            "Paths are relative to the town directory (gt init DIR).\n",
        );
        buf.extend_from_slice(files_text.as_bytes());
    }
    if named.get_version().is_some() || named.get_long_version().is_some() {
        man.render_version_section(&mut buf).map_err(io)?;
    }
    files.push((PathBuf::from("man").join(format!("{name}.1")), buf));
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), files)?;
    }
    Ok(())
}
