//! `gt init`.

use super::{Global, output};
use crate::error::Result;
use std::path::PathBuf;

/// Create a town: a directory with gt.toml (town-wide defaults) and .gt/town.db (state).
///
/// Prints the town's absolute path. Run the other commands inside it, or point them at
/// it with --town DIR or GT_TOWN.
#[derive(clap::Args, Debug)]
#[command(after_long_help = r#"Examples:
  gt init ~/town                # a town in ~/town (created); prints its path
  cd ~/town && gt status        # gt finds the town from any directory inside it
  GT_TOWN=~/town gt rig list    # or name it from anywhere (as --town ~/town does)"#)]
pub struct InitArgs {
    /// Directory to create the town in (created if missing; default: the current one).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(g: &Global, args: &InitArgs) -> Result<()> {
    let made = crate::town::init::init(&args.dir)?;
    if g.json {
        output::json(&made)
    } else {
        output::println_out(&made.path.display().to_string())
    }
}
