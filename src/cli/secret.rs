//! `gt secret set | list | rm`: the town's API keys and tokens. A value is read from
//! stdin or a file, never from the command line (argv is visible to every user in `ps`).

use super::{Global, output};
use crate::error::{IoContext, Result};
use std::io::Read;
use std::path::PathBuf;

/// Manage the town's secrets: API keys and tokens its agents need.
///
/// A secret is stored in the town under .gt/secrets/NAME (directory 0700, file 0600),
/// never in the database, the event log or a container's configuration. A rig attaches
/// it by name (`gt rig add|set --secret NAME`, or a preset such as `--agent claude`);
/// each of its agents gets a read-only copy at /gt-secrets/NAME, which `gt agent run`
/// sets as the environment variable NAME of the agent command only. `gt peek` shows
/// known values as `[secret NAME]`.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  printf %s "$ANTHROPIC_API_KEY" | gt secret set ANTHROPIC_API_KEY
  gt secret set OPENAI_API_KEY --file ~/.config/openai/key
  gt secret list
  gt secret rm OPENAI_API_KEY"#)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum SecretCommand {
    Set(SetArgs),
    /// List the town's secrets: names and when each was set, never values.
    #[command(after_long_help = r#"Examples:
  gt secret list                # names and when each was set, never values
  gt --json secret list"#)]
    List,
    Rm(RmArgs),
}

/// Set a secret: its value from stdin (or --file), never from the command line.
///
/// A trailing newline is dropped; an empty value is refused. Setting it again replaces
/// the value from the next dispatch on (running agents keep their copy). The value is
/// never printed, logged or stored in the database: `gt log` names the secret only.
#[derive(clap::Args, Debug)]
#[command(after_long_help = "\
Examples:
  printf %s \"$ANTHROPIC_API_KEY\" | gt secret set ANTHROPIC_API_KEY
  gt secret set GITHUB_TOKEN --file token.txt
  gt secret set OPENAI_API_KEY     # then paste the key and press Ctrl-D")]
pub struct SetArgs {
    /// The secret's name, as the agent's environment variable: [A-Z_][A-Z0-9_]{0,63}
    /// (not GT_…), e.g. ANTHROPIC_API_KEY.
    pub name: String,
    /// Read the value from this file instead of stdin (at most 64 KiB).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// Remove a secret; names the rigs that attach it.
///
/// Their slings fail until it is set again (running agents keep their copy until released).
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt secret rm OPENAI_API_KEY   # names the rigs that attach it
  gt secret rm OPENAI_API_KEY   # gone already (exits 4)
  gt secret list"#)]
pub struct RmArgs {
    /// The secret's name.
    pub name: String,
}

/// The value, read bounded (one byte over the limit is enough to refuse it).
fn read_value(file: Option<&PathBuf>) -> Result<Vec<u8>> {
    let limit = crate::town::secret::MAX_BYTES + 1;
    let mut buf = Vec::new();
    match file {
        Some(p) => {
            let f = std::fs::File::open(p).ctx(|| format!("opening {}", p.display()))?;
            f.take(limit)
                .read_to_end(&mut buf)
                .ctx(|| format!("reading {}", p.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("paste the value, then press Ctrl-D (it is not echoed to any log)");
            }
            std::io::stdin()
                .take(limit)
                .read_to_end(&mut buf)
                .ctx(|| "reading the value from stdin".to_string())?;
        }
    }
    Ok(buf)
}

pub fn run(g: &Global, args: &SecretArgs) -> Result<()> {
    match &args.command {
        SecretCommand::Set(a) => {
            crate::town::secret::validate_name(&a.name)?;
            let mut town = g.town()?;
            let value = read_value(a.file.as_ref())?;
            let set = crate::town::secret::set(&mut town, &a.name, value)?;
            if g.json {
                return output::json(&set);
            }
            if g.quiet {
                return Ok(());
            }
            output::println_out(&format!(
                "{} secret {}",
                if set.replaced { "replaced" } else { "set" },
                set.name
            ))
        }
        SecretCommand::List => {
            let town = g.town()?;
            let secrets = crate::town::secret::list(&town)?;
            if g.json {
                return output::json(&secrets);
            }
            if secrets.is_empty() {
                return output::println_out(
                    "no secrets yet; `printf %s \"$KEY\" | gt secret set NAME` sets one",
                );
            }
            let mut t = output::Table::new(&["name", "set"]);
            for s in &secrets {
                t.row(vec![s.name.clone(), output::time(s.set_at)]);
            }
            t.print()
        }
        SecretCommand::Rm(a) => {
            let mut town = g.town()?;
            let removed = crate::town::secret::remove(&mut town, &a.name)?;
            if !removed.used_by.is_empty() {
                tracing::warn!(
                    "rig(s) {} attach {}: their slings fail until it is set again (`gt secret set {}`) or detached (`gt rig set RIG --secret …`)",
                    removed.used_by.join(", "),
                    removed.name,
                    removed.name
                );
            }
            if g.json {
                return output::json(&removed);
            }
            if g.quiet {
                return Ok(());
            }
            output::println_out(&format!("removed secret {}", removed.name))
        }
    }
}
