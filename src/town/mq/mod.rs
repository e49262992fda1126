//! The merge queue: a done bead's merge request is reviewed (`review.rs`: `gt diff`,
//! `gt mq show`) and landed on its rig's default branch by deterministic code, one
//! writer per rig (`land.rs`), per the rig's policy and style.

mod review;

pub use review::{Change, CommitLine, FileStat, Shown, diff, show};

use crate::error::{Error, Result};

/// How a rig's merge requests land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A person approves each one (`gt mq approve`); then it lands like `auto`.
    Review,
    /// Lands once its gate passes, without approval.
    Auto,
    /// Only recorded; nothing lands.
    Off,
}

impl Policy {
    pub const NAMES: [&'static str; 3] = ["review", "auto", "off"];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Review => "review",
            Policy::Auto => "auto",
            Policy::Off => "off",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Policy> {
        match s {
            "review" => Ok(Policy::Review),
            "auto" => Ok(Policy::Auto),
            "off" => Ok(Policy::Off),
            _ => Err(
                Error::usage(format!("--merge {s:?} is not a landing policy"))
                    .with_hint("use review, auto or off"),
            ),
        }
    }
}

/// How a change is put on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A merge commit with the target and the change as parents: the agent's commits kept.
    Merge,
    /// One new commit on the target with the change's whole diff.
    Squash,
    /// The change's commits replayed one by one on the target.
    Rebase,
}

impl Style {
    pub const NAMES: [&'static str; 3] = ["merge", "squash", "rebase"];

    pub fn as_str(self) -> &'static str {
        match self {
            Style::Merge => "merge",
            Style::Squash => "squash",
            Style::Rebase => "rebase",
        }
    }
}

impl std::str::FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Style> {
        match s {
            "merge" => Ok(Style::Merge),
            "squash" => Ok(Style::Squash),
            "rebase" => Ok(Style::Rebase),
            _ => Err(
                Error::usage(format!("--merge-style {s:?} is not a merge style"))
                    .with_hint("use merge, squash or rebase"),
            ),
        }
    }
}
