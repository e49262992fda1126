//! gt: a crew of coding agents on one machine, crash-safe by construction.
//! Layers (DESIGN.md): cli → town (use cases) → state | runtime | git | agent.

pub mod agent;
pub mod cli;
pub mod error;
pub mod git;
pub mod interrupt;
pub mod runtime;
pub mod state;
pub mod town;
pub mod untrusted;
pub mod util;

pub use error::{Error, Result};
