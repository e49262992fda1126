//! `gt image build`: the agent images, built on this machine from host files and npm.

use super::{Global, output};
use crate::error::Result;
use crate::runtime::docker::DockerRuntime;
use crate::town::image::Kind;

/// Build agent images locally: no container registry is used, nothing is pulled.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt image build                            # gt-agent:latest, the default image: busybox, bash, git, gt
  gt image build claude                     # gt-claude:latest with Claude Code from npm
  gt image build codex --version 0.169.0    # gt-codex:latest with that Codex CLI
  gt rig add api ~/src/api --agent claude   # uses gt-claude:latest"#)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    Build(BuildArgs),
}

/// Build an agent image: base, claude or codex.
///
/// The root filesystem is assembled from this machine's files (busybox, bash, git, the
/// libraries they need, CA certificates, and this gt binary) and, for claude and codex,
/// the CLI's native binary from its npm package (npm must reach its registry). The image
/// runs as a non-root user (uid 10001), records the CLI's package and version in the
/// labels gt.cli.package and gt.cli.version, and is imported into the Docker engine
/// (`docker import`). The CLIs' licences forbid redistributing them: build, never ship.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt image build                            # gt-agent:latest, the default image: busybox, bash, git, gt
  gt image build claude                     # gt-claude:latest with Claude Code from npm
  gt image build codex --version 0.169.0    # gt-codex:latest with that Codex CLI
  gt image build base --tag my-agent:1      # under a name of yours"#)]
pub struct BuildArgs {
    /// What to build (default: base, the image a new town's agents use).
    #[arg(value_enum, default_value = "base")]
    pub kind: Kind,
    /// The CLI version to pin (default: npm's latest, resolved and recorded).
    #[arg(long, value_name = "V")]
    pub version: Option<String>,
    /// The image name (default: gt-agent:latest for base, gt-claude:latest or gt-codex:latest).
    #[arg(long, value_name = "IMAGE")]
    pub tag: Option<String>,
}

pub fn run(g: &Global, args: &ImageArgs) -> Result<()> {
    match &args.command {
        ImageCommand::Build(a) => {
            let rt = DockerRuntime::connect()?;
            let built =
                crate::town::image::build(&rt, a.kind, a.version.as_deref(), a.tag.as_deref())?;
            if g.json {
                return output::json(&built);
            }
            let what = match (&built.package, &built.version) {
                (Some(p), Some(v)) => format!(" with {p}@{v}"),
                _ => String::new(),
            };
            output::println_out(&format!(
                "built {}{what} ({}, {:.0}s)",
                built.image,
                built
                    .size_bytes
                    .map(|b| format!("{:.1} MB", b as f64 / 1e6))
                    .unwrap_or_else(|| "size unknown".into()),
                built.seconds
            ))
        }
    }
}
