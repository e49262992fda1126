//! The one error type of gt. Every variant knows its exit code (DESIGN.md "Command line")
//! and most carry a hint: the command a user should run next.

use std::path::PathBuf;

/// Exit codes, as documented in README.md and `gt --help`.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const CONFLICT: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const RUNTIME: i32 = 5;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input the user can fix: a name, a flag value, a config key.
    #[error("{msg}")]
    Usage { msg: String, hint: Option<String> },

    /// Lost a race or a uniqueness rule: already hooked, branch in use, version changed.
    #[error("{msg}")]
    Conflict { msg: String, hint: Option<String> },

    /// A patrol whose lease another patrol took over: it must stop writing at once.
    #[error(
        "this patrol lost its lease (fencing token {token}, now {current}); another patrol took over, nothing more is written"
    )]
    LeaseLost { token: i64, current: String },

    #[error("{what} not found")]
    NotFound { what: String, hint: Option<String> },

    /// The container runtime (Docker) could not be reached.
    #[error("container runtime unavailable: {msg}")]
    RuntimeUnavailable {
        msg: String,
        /// What this machine lacks (read from it where the error is made), when known.
        hint: Option<String>,
    },

    /// The runtime answered but refused (bad image, bad spec).
    #[error("container runtime: {msg}")]
    Runtime { msg: String, hint: Option<String> },

    #[error("not inside a gt town (no .gt/ directory here or in any parent)")]
    NoTown,

    #[error("{path}: {msg}")]
    Database {
        path: PathBuf,
        msg: String,
        hint: Option<String>,
    },

    /// Another process held the database's write lock for longer than this one waited.
    #[error("{path}: {msg}")]
    Busy { path: PathBuf, msg: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("git: {msg}")]
    Git { msg: String, hint: Option<String> },

    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },

    /// SIGINT or SIGTERM stopped a command between its steps; `undone` says what was
    /// undone. Exit code 128 + the signal (130 for Ctrl-C, 143 for SIGTERM).
    #[error("interrupted by {}{}", if *signal == 15 { "SIGTERM" } else { "SIGINT" }, if undone.is_empty() { String::new() } else { format!(": {undone}") })]
    Interrupted { signal: i32, undone: String },

    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } | Error::Config { .. } => exit::USAGE,
            Error::Conflict { .. } | Error::LeaseLost { .. } => exit::CONFLICT,
            Error::NotFound { .. } | Error::NoTown => exit::NOT_FOUND,
            Error::RuntimeUnavailable { .. } => exit::RUNTIME,
            Error::Interrupted { signal, .. } => 128 + signal,
            _ => exit::ERROR,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::NotFound { hint, .. }
            | Error::Runtime { hint, .. }
            | Error::Database { hint, .. }
            | Error::Git { hint, .. } => hint.clone(),
            Error::Busy { .. } => Some(
                "another gt command holds a long write transaction; try again when it is done"
                    .into(),
            ),
            Error::RuntimeUnavailable { hint, .. } => Some(hint.clone().unwrap_or_else(|| {
                "start the Docker engine, or point DOCKER_HOST at one (e.g. unix:///run/docker.sock)"
                    .into()
            })),
            Error::NoTown => Some(
                "run `gt init DIR` to create one, or pass --town DIR (or set GT_TOWN)".into(),
            ),
            Error::Io { source, .. } if is_read_only(source) => Some(
                "the town directory is read-only: run gt as a user who can write to it".into(),
            ),
            _ => None,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage {
            msg: msg.into(),
            hint: None,
        }
    }
    pub fn conflict(msg: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::Conflict {
            msg: msg.into(),
            hint: hint.into(),
        }
    }
    pub fn not_found(what: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Error::NotFound {
            what: what.into(),
            hint: hint.into(),
        }
    }
    pub fn git(msg: impl Into<String>) -> Self {
        Error::Git {
            msg: msg.into(),
            hint: None,
        }
    }
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    pub fn with_hint(mut self, h: impl Into<String>) -> Self {
        match &mut self {
            Error::Usage { hint, .. }
            | Error::Conflict { hint, .. }
            | Error::NotFound { hint, .. }
            | Error::Runtime { hint, .. }
            | Error::Database { hint, .. }
            | Error::Git { hint, .. } => *hint = Some(h.into()),
            _ => {}
        }
        self
    }
}

fn is_read_only(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Context for I/O errors: `fs::write(p, b).ctx(|| format!("writing {}", p.display()))`.
pub trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}

impl From<git2::Error> for Error {
    fn from(e: git2::Error) -> Self {
        Error::git(e.message().to_string())
    }
}
