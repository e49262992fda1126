//! Patrol as a service: a crontab entry or a systemd user timer that runs this gt binary's
//! `gt patrol` for this town (with the caller's `DOCKER_HOST`, when set). Both are found again by a marker naming the town, so an
//! install is idempotent and never touches another town's entry, nor anything else.
//!
//! Tests (and anyone who must not touch the real ones) point gt elsewhere: `GT_CRONTAB`
//! is the crontab command (default `crontab`), `GT_SYSTEMCTL` the systemctl command
//! (default `systemctl`), and the units go to `$XDG_CONFIG_HOME/systemd/user` (default
//! `~/.config/systemd/user`).

use super::Town;
use crate::error::{Error, IoContext, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where patrol runs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Cron,
    Systemd,
}

/// What `install` or `uninstall` did (or, with `print`, would write).
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub scheduler: Scheduler,
    /// False when everything was already as asked: nothing was written.
    pub changed: bool,
    /// What was (or is to be) written: the crontab line, or the unit files' text.
    pub text: String,
    /// The files written or removed (systemd), or `crontab` (cron).
    pub places: Vec<String>,
    /// What is left for the person to do, when gt could not do it.
    pub todo: Option<String>,
}

/// The command patrol runs: this binary, with this town, quiet, logging to the town.
fn exe() -> Result<PathBuf> {
    let p = std::env::current_exe().ctx(|| "finding the gt binary".into())?;
    // A binary replaced under a running process reads as "/path/gt (deleted)".
    let s = p.to_string_lossy();
    Ok(PathBuf::from(s.trim_end_matches(" (deleted)")))
}

fn checked(p: &Path, what: &str) -> Result<String> {
    let s = p.to_str().ok_or_else(|| {
        Error::usage(format!("{what} {} is not UTF-8", p.display()))
            .with_hint("move it to a path of plain characters")
    })?;
    if s.contains(['\n', '\r']) {
        return Err(Error::usage(format!("{what} {s:?} holds a line break"))
            .with_hint("move it to a path without one"));
    }
    Ok(s.to_string())
}

/// `'…'` for sh, with `'` written as `'\''`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The marker that ends this town's crontab line (as written: cron reads `%` anywhere in
/// the command, its comment included, as a line break).
fn cron_marker(town: &Path) -> String {
    format!("# gt patrol for {}", town.display()).replace('%', r"\%")
}

/// The engine gt talks to now, when it is not the default one: cron and systemd start
/// patrol without the caller's environment, so the entry carries it.
fn docker_host() -> Result<Option<String>> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => {
            checked(Path::new(&h), "DOCKER_HOST")?;
            Ok(Some(h))
        }
        _ => Ok(None),
    }
}

/// This town's crontab line: every minute (cron's finest), appending to `.gt/patrol.log`,
/// with `DOCKER_HOST` when it is set.
pub fn cron_line(town: &Town) -> Result<String> {
    let root = checked(&town.root, "the town")?;
    let bin = checked(&exe()?, "the gt binary")?;
    let log = format!("{root}/.gt/patrol.log");
    let env = docker_host()?
        .map(|h| format!("DOCKER_HOST={} ", sh_quote(&h)))
        .unwrap_or_default();
    // cron turns an unescaped % into a line break.
    let cmd = format!(
        "cd {} && {env}{} --town {} -q patrol >> {} 2>&1",
        sh_quote(&root),
        sh_quote(&bin),
        sh_quote(&root),
        sh_quote(&log)
    )
    .replace('%', r"\%");
    Ok(format!("* * * * * {cmd} {}", cron_marker(&town.root)))
}

fn crontab_cmd() -> String {
    std::env::var("GT_CRONTAB").unwrap_or_else(|_| "crontab".into())
}

/// The user's crontab, line by line (empty when they have none).
fn crontab_read() -> Result<Vec<String>> {
    let cmd = crontab_cmd();
    let out = Command::new(&cmd)
        .arg("-l")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| cron_missing(&cmd, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // "no crontab for USER": none yet.
        if err.contains("no crontab") {
            return Ok(Vec::new());
        }
        return Err(Error::Other(format!(
            "`{cmd} -l` failed ({}): {}",
            out.status,
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect())
}

fn crontab_write(lines: &[String]) -> Result<()> {
    use std::io::Write;
    let cmd = crontab_cmd();
    let mut child = Command::new(&cmd)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cron_missing(&cmd, e))?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .ctx(|| format!("writing the new crontab to `{cmd} -`"))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("waiting for `{cmd} -`"))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "`{cmd} -` refused the new crontab ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn cron_missing(cmd: &str, e: std::io::Error) -> Error {
    let hint =
        "install cron (Debian: `apt-get install cron`), or use `gt patrol install --systemd`";
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::not_found(format!("the command `{cmd}`"), Some(hint.to_string()))
    } else {
        Error::Other(format!("cannot run `{cmd}`: {e} ({hint})"))
    }
}

/// The systemd user unit directory.
fn unit_dir() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("systemd/user"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Error::usage("neither XDG_CONFIG_HOME nor HOME is set: no place for systemd user units")
                .with_hint("set HOME (or XDG_CONFIG_HOME)")
        })?;
    Ok(PathBuf::from(home).join(".config/systemd/user"))
}

/// `gt-patrol-<town id>`: one unit pair per town.
pub fn unit_name(town: &Town) -> String {
    format!("gt-patrol-{}", town.id)
}

/// An argument of ExecStart: quoted, with systemd's specifiers (`%`) and variables (`$`)
/// taken literally.
fn unit_quote(s: &str) -> String {
    let s = s
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{s}\"")
}

/// The service and timer files: a oneshot pass every `patrol.interval`.
pub fn unit_files(town: &Town) -> Result<(String, String)> {
    let root = checked(&town.root, "the town")?;
    let bin = checked(&exe()?, "the gt binary")?;
    let every = crate::util::millis(town.config.patrol.interval).max(1000) / 1000;
    let env = docker_host()?
        .map(|h| format!("Environment={}\n", unit_quote(&format!("DOCKER_HOST={h}"))))
        .unwrap_or_default();
    let service = format!(
        "# Written by `gt patrol install --systemd`; `gt patrol uninstall` removes it.\n\
         [Unit]\n\
         Description=gt patrol for the town at {root}\n\n\
         [Service]\n\
         Type=oneshot\n\
         WorkingDirectory={}\n\
         {env}\
         ExecStart={} --town {} -q patrol\n",
        // A path, taken whole (no quotes); only specifiers are expanded in it.
        root.replace('%', "%%"),
        unit_quote(&bin),
        unit_quote(&root),
    );
    let timer = format!(
        "# Written by `gt patrol install --systemd`; `gt patrol uninstall` removes it.\n\
         [Unit]\n\
         Description=gt patrol every {every}s for the town at {root}\n\n\
         [Timer]\n\
         OnBootSec=1min\n\
         OnUnitActiveSec={every}s\n\
         AccuracySec=1s\n\n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    Ok((service, timer))
}

fn systemctl(args: &[&str]) -> std::result::Result<(), String> {
    let cmd = std::env::var("GT_SYSTEMCTL").unwrap_or_else(|_| "systemctl".into());
    match Command::new(&cmd)
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "`{cmd} --user {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `{cmd}`: {e}")),
    }
}

/// Install (or with `print`, only compute) the entry running patrol for this town.
pub fn install(town: &Town, scheduler: Scheduler, print: bool) -> Result<Outcome> {
    match scheduler {
        Scheduler::Cron => install_cron(town, print),
        Scheduler::Systemd => install_systemd(town, print),
    }
}

fn install_cron(town: &Town, print: bool) -> Result<Outcome> {
    let line = cron_line(town)?;
    let mut outcome = Outcome {
        scheduler: Scheduler::Cron,
        changed: false,
        text: line.clone(),
        places: vec!["crontab".into()],
        todo: None,
    };
    if print {
        return Ok(outcome);
    }
    let marker = cron_marker(&town.root);
    let lines = crontab_read()?;
    if lines.contains(&line) && lines.iter().filter(|l| l.ends_with(&marker)).count() == 1 {
        return Ok(outcome);
    }
    // This town's older line (another binary, say) is replaced; every other line stays.
    let mut new: Vec<String> = lines
        .into_iter()
        .filter(|l| !l.ends_with(&marker))
        .collect();
    new.push(line);
    crontab_write(&new)?;
    outcome.changed = true;
    Ok(outcome)
}

fn install_systemd(town: &Town, print: bool) -> Result<Outcome> {
    let (service, timer) = unit_files(town)?;
    let dir = unit_dir()?;
    let name = unit_name(town);
    let files = [
        (dir.join(format!("{name}.service")), service),
        (dir.join(format!("{name}.timer")), timer),
    ];
    let mut outcome = Outcome {
        scheduler: Scheduler::Systemd,
        changed: false,
        text: files
            .iter()
            .map(|(p, t)| format!("# {}\n{t}", p.display()))
            .collect::<Vec<_>>()
            .join("\n"),
        places: files.iter().map(|(p, _)| p.display().to_string()).collect(),
        todo: None,
    };
    if print {
        return Ok(outcome);
    }
    std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    for (p, text) in &files {
        if std::fs::read_to_string(p).ok().as_deref() != Some(text.as_str()) {
            crate::util::write_atomic(p, text.as_bytes())?;
            outcome.changed = true;
        }
    }
    // Enabling again is harmless, and finishes an install whose systemctl failed before.
    let timer = format!("{name}.timer");
    let r = if outcome.changed {
        systemctl(&["daemon-reload"])
    } else {
        Ok(())
    }
    .and_then(|()| systemctl(&["enable", "--now", &timer]));
    if let Err(why) = r {
        outcome.todo = Some(format!(
            "{why}; the units are written: run `systemctl --user daemon-reload && systemctl --user enable --now {timer}`"
        ));
    }
    Ok(outcome)
}

/// Remove this town's entries: from `only` that scheduler, else from both (what is not
/// there is skipped; a missing crontab command counts as no entry).
pub fn uninstall(town: &Town, only: Option<Scheduler>) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    if only != Some(Scheduler::Systemd) {
        let marker = cron_marker(&town.root);
        let lines = match crontab_read() {
            Ok(l) => l,
            Err(e) if only.is_some() => return Err(e),
            Err(_) => Vec::new(),
        };
        let (mine, rest): (Vec<String>, Vec<String>) =
            lines.into_iter().partition(|l| l.ends_with(&marker));
        if !mine.is_empty() {
            crontab_write(&rest)?;
        }
        out.push(Outcome {
            scheduler: Scheduler::Cron,
            changed: !mine.is_empty(),
            text: mine.join("\n"),
            places: vec!["crontab".into()],
            todo: None,
        });
    }
    if only != Some(Scheduler::Cron) {
        let dir = unit_dir()?;
        let name = unit_name(town);
        let files = [
            dir.join(format!("{name}.service")),
            dir.join(format!("{name}.timer")),
        ];
        let present: Vec<&PathBuf> = files.iter().filter(|p| p.exists()).collect();
        let mut todo = None;
        if !present.is_empty() {
            // Stop it first; a systemctl that cannot be run leaves a timer whose unit
            // file is gone, which systemd drops at its next reload.
            if let Err(why) = systemctl(&["disable", "--now", &format!("{name}.timer")]) {
                todo = Some(format!(
                    "{why}; run `systemctl --user disable --now {name}.timer` if it still runs"
                ));
            }
            for p in &present {
                std::fs::remove_file(p).ctx(|| format!("removing {}", p.display()))?;
            }
            let _ = systemctl(&["daemon-reload"]);
        }
        out.push(Outcome {
            scheduler: Scheduler::Systemd,
            changed: !present.is_empty(),
            text: String::new(),
            places: present.iter().map(|p| p.display().to_string()).collect(),
            todo,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_quotes_and_specifiers_literal() {
        assert_eq!(sh_quote("a'b c"), r"'a'\''b c'");
        assert_eq!(unit_quote(r#"/a b/"c"%d$e\"#), r#""/a b/\"c\"%%d$$e\\""#);
    }
}
