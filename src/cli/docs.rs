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

fn man_pages(cmd: &clap::Command, name: &str, files: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(clap::builder::Str::from(
        name.to_string().leak() as &'static str
    )))
    .render(&mut buf)
    .map_err(|e| Error::Other(e.to_string()))?;
    files.push((PathBuf::from("man").join(format!("{name}.1")), buf));
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), files)?;
    }
    Ok(())
}
