//! `gt completions SHELL`, and the generated files checked in under completions/ and
//! man/ (a test regenerates them and fails when they are stale).

use super::{Cli, Global, output};
use crate::error::{Error, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

/// Print a shell completion script: `gt completions bash > /etc/bash_completion.d/gt`.
#[derive(clap::Args, Debug)]
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

/// Every man page has EXAMPLES: the command's own (`after_long_help`, "Examples:"), or
/// its plain invocation with its arguments named.
fn examples_section(cmd: &clap::Command, name: &str) -> String {
    let words = name.replace('-', " ");
    let lines: Vec<String> = match cmd.get_after_long_help() {
        Some(text) => text
            .to_string()
            .lines()
            .filter(|l| !l.trim().is_empty() && l.trim() != "Examples:")
            .map(|l| l.strip_prefix("  ").unwrap_or(l).trim_end().to_string())
            .collect(),
        None => {
            let args: Vec<String> = cmd
                .get_positionals()
                .filter(|a| !a.is_hide_set())
                .map(|a| {
                    let v = a.get_id().as_str().to_uppercase();
                    if a.is_required_set() {
                        v
                    } else {
                        format!("[{v}]")
                    }
                })
                .collect();
            let mut l = vec![format!("{words} {}", args.join(" ")).trim().to_string()];
            if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
                l.push(format!("{words} --help"));
            }
            l
        }
    };
    let mut out = String::from(".SH EXAMPLES\n.nf\n");
    for l in lines {
        let l = l.replace('\\', "\\e");
        if l.starts_with('.') || l.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out.push_str(".fi\n");
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
    if named.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut buf).map_err(io)?;
    }
    buf.extend_from_slice(examples_section(cmd, name).as_bytes());
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
