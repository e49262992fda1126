//! Use cases: the only layer that combines state, runtime and git. Each verb lives in
//! its own file as a short sequence of steps; `Town` is the opened workspace they share.

pub mod bead;
pub mod budget;
pub mod config;
pub mod convoy;
pub mod doctor;
pub mod done;
pub mod drain;
pub mod image;
pub mod ingest;
pub mod init;
pub mod mail;
pub mod mq;
pub mod patrol;
pub mod pki;
pub mod polecat;
pub mod rig;
pub mod secret;
pub mod serve;
pub mod service;
pub mod sling;
pub mod status;
pub mod top;
pub mod transcript;
pub mod watch;
pub mod workspace;

use crate::error::{Error, Result};
use crate::state::Db;
use config::Config;
use std::path::{Path, PathBuf};

pub const DB_DIR: &str = ".gt";
pub const DB_FILE: &str = "town.db";
pub const CONFIG_FILE: &str = "gt.toml";

/// Who a host command acts as, in the event log.
pub const HUMAN: &str = "human";

/// `<town>/rigs/<rig>/polecats/<name>`: a polecat's worktree.
pub fn worktree_path(root: &Path, rig: &str, polecat: &str) -> PathBuf {
    root.join("rigs").join(rig).join("polecats").join(polecat)
}

/// When gt runs as root, agents' worktrees belong to their unprivileged uid: libgit2's
/// owner check (meant for repositories in shared places) would refuse to open them. The
/// town is private (0700) and the host opens agent paths only from its own records.
pub fn allow_agent_owned_worktrees() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a process-wide libgit2 option, set once before any repository is
        // opened by this process's use cases.
        let _ = unsafe { git2::opts::set_verify_owner_validation(false) };
    });
}

pub struct Town {
    pub root: PathBuf,
    pub config: Config,
    pub db: Db,
    pub id: String,
}

impl Town {
    /// Find the town: `explicit` (from --town or GT_TOWN), else the nearest parent of
    /// the working directory that holds `.gt/`.
    pub fn discover(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(dir) = explicit {
            if dir.join(DB_DIR).is_dir() {
                return std::path::absolute(dir)
                    .map_err(|e| Error::io(format!("resolving {}", dir.display()), e));
            }
            return Err(Error::not_found(
                format!("town at {} (it has no .gt/ directory)", dir.display()),
                Some(format!("create it with `gt init {}`", dir.display())),
            ));
        }
        let cwd =
            std::env::current_dir().map_err(|e| Error::io("reading the working directory", e))?;
        cwd.ancestors()
            .find(|d| d.join(DB_DIR).is_dir())
            .map(Path::to_path_buf)
            .ok_or(Error::NoTown)
    }

    pub fn open(explicit: Option<&Path>) -> Result<Town> {
        let root = Town::discover(explicit)?;
        Town::open_at(root)
    }

    pub fn open_at(root: PathBuf) -> Result<Town> {
        allow_agent_owned_worktrees();
        let config = config::load(&root.join(CONFIG_FILE))?;
        let db = Db::open(&root.join(DB_DIR).join(DB_FILE))?;
        let id = db
            .conn()
            .query_row("SELECT value FROM meta WHERE key = 'town_id'", [], |r| {
                r.get(0)
            })
            .map_err(|e| crate::state::db_err(db.path(), e))?;
        Ok(Town {
            root,
            config,
            db,
            id,
        })
    }

    pub fn rig_dir(&self, rig: &str) -> PathBuf {
        self.root.join("rigs").join(rig)
    }
    pub fn repo_dir(&self, rig: &str) -> PathBuf {
        self.rig_dir(rig).join("repo")
    }
    pub fn worktree_dir(&self, rig: &str, polecat: &str) -> PathBuf {
        worktree_path(&self.root, rig, polecat)
    }
    pub fn mailbox_dir(&self, rig: &str, polecat: &str) -> PathBuf {
        self.root.join("agents").join(rig).join(polecat)
    }

    /// A SQLite error of this town's database, with its path.
    pub fn db_err(&self, e: rusqlite::Error) -> Error {
        crate::state::db_err(self.db.path(), e)
    }
}

impl Town {
    /// Where agent `a`'s worktree is, when it has one: under the town's current root,
    /// never the absolute path recorded when it was made (the town directory may have
    /// been moved since; a path in the database names the old place).
    pub fn agent_worktree(&self, a: &crate::state::agents::Agent) -> Option<PathBuf> {
        a.worktree
            .as_ref()
            .map(|_| worktree_path(&self.root, &a.rig, &a.name))
    }
}
