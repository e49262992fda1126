//! The town database: one SQLite file in WAL mode. Owns opening (with the refusal of
//! foreign and newer files), migrations, write transactions that always carry their
//! event row, and the compare-and-swap helper for versioned rows.

pub mod agents;
pub mod beads;
pub mod checkpoints;
pub mod dispatches;
pub mod events;
pub mod mail;
pub mod merge_requests;
pub mod rigs;
pub mod schema;
pub mod usage;

use crate::error::{Error, Result};
use crate::util::now_ms;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rusqlite::Transaction;

/// How long a writer waits for another process's transaction before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Db {
    conn: Connection,
    path: PathBuf,
    /// A patrol's fencing token and lease length: set, every write first checks it still
    /// holds the lease and extends it, so a pass that keeps working keeps its lease.
    fence: Option<(i64, Duration)>,
    /// Who writes, in the event log: `human` for host commands, `patrol`, or an agent.
    actor: String,
}

impl Db {
    /// Create a new database (fails if one exists) and migrate it to the current schema.
    pub fn create(path: &Path) -> Result<Db> {
        if path.exists() {
            return Err(Error::Database {
                path: path.into(),
                msg: "a town database already exists here".into(),
                hint: Some("use the existing town, or choose another directory".into()),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_err(path, e))?;
        let mut db = Db {
            conn,
            path: path.into(),
            fence: None,
            actor: "human".into(),
        };
        db.configure()?;
        db.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| db_err(path, e))?;
        db.migrate()?;
        Ok(db)
    }

    /// Open an existing town database. Refuses (and leaves untouched) a file that is not
    /// SQLite, a SQLite file of another application, and a database of a newer gt.
    pub fn open(path: &Path) -> Result<Db> {
        if !path.is_file() {
            return Err(Error::Database {
                path: path.into(),
                msg: "the town database is missing".into(),
                hint: Some(
                    "the town directory is incomplete; run `gt init` in a new directory".into(),
                ),
            });
        }
        let open = |target: &str, flags: OpenFlags| -> rusqlite::Result<(Connection, i64, i64)> {
            let conn =
                Connection::open_with_flags(target, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // Read-only checks first: nothing is written until the file is known to be ours.
            let (app_id, version) = conn.query_row(
                "SELECT * FROM pragma_application_id, pragma_user_version",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?;
            Ok((conn, app_id, version))
        };
        // A town this user cannot write (another user's, a read-only mount) can still be
        // read: read-only, or, where SQLite cannot even create the WAL index beside the
        // file, as an immutable file (a clean close leaves no WAL behind to miss).
        let cannot_write = |e: &rusqlite::Error| {
            matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
            )
        };
        let plain = path.to_string_lossy();
        let (conn, app_id, version) = match open(&plain, OpenFlags::SQLITE_OPEN_READ_WRITE) {
            Err(e) if cannot_write(&e) => match open(&plain, OpenFlags::SQLITE_OPEN_READ_ONLY) {
                Err(e2) if cannot_write(&e2) => {
                    let uri = format!(
                        "file:{}?immutable=1",
                        plain
                            .replace('%', "%25")
                            .replace('?', "%3f")
                            .replace('#', "%23")
                    );
                    open(
                        &uri,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
                    )
                    .map_err(|_| db_err(path, e))?
                }
                other => other.map_err(|_| db_err(path, e))?,
            },
            other => other.map_err(|e| db_err(path, e))?,
        };
        // Only a file that says it is gt's is ever written. An empty file (zero bytes,
        // or SQLite with no tables) says nothing, so it is refused too: migrating it in
        // place would turn someone else's fresh database into a town.
        if app_id != schema::APPLICATION_ID {
            // Closing must not checkpoint a foreign WAL into its file: leave it as found.
            let _ = conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            );
            return Err(not_ours(&conn, path, app_id));
        }
        if version > schema::CURRENT {
            return Err(Error::Database {
                path: path.into(),
                msg: format!(
                    "this town database has schema version {version}, made by a newer gt; \
                     this gt ({}) understands up to version {}",
                    env!("CARGO_PKG_VERSION"),
                    schema::CURRENT
                ),
                hint: Some("upgrade gt; the database was not modified".into()),
            });
        }
        let mut db = Db {
            conn,
            path: path.into(),
            fence: None,
            actor: "human".into(),
        };
        db.configure()?;
        if version < schema::CURRENT {
            db.migrate()?;
        }
        Ok(db)
    }

    fn configure(&mut self) -> Result<()> {
        let path = self.path.clone();
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_err(&path, e))?;
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")
            .map_err(|e| db_err(&path, e))
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err(&path, e))?;
        // Re-read inside the lock: another process may have migrated meanwhile.
        let from: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| db_err(&path, e))?;
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(from as usize) {
            tx.execute_batch(sql).map_err(|e| db_err(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| db_err(&path, e))?;
        }
        tx.pragma_update(None, "application_id", schema::APPLICATION_ID)
            .map_err(|e| db_err(&path, e))?;
        tx.execute(
            "INSERT INTO events (at, actor, kind, subject, data) VALUES (?1, 'gt', 'schema.migrated', 'town', ?2)",
            params![now_ms(), format!("{{\"from\":{from},\"to\":{}}}", schema::CURRENT)],
        )
        .map_err(|e| db_err(&path, e))?;
        tx.commit().map_err(|e| db_err(&path, e))
    }

    /// True when this user can only read the town (every write fails with a clear error).
    pub fn is_read_only(&self) -> bool {
        self.conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false)
    }

    /// True while a patrol lease fences every write (see `set_fence`).
    pub fn is_fenced(&self) -> bool {
        self.fence.is_some()
    }

    /// How long later writes wait for another process's write transaction (SQLite's
    /// busy timeout); `BUSY_TIMEOUT` unless changed. A write that waited in vain fails
    /// with `Error::Busy`.
    pub fn set_busy_timeout(&mut self, wait: Duration) -> Result<()> {
        let path = self.path.clone();
        self.conn.busy_timeout(wait).map_err(|e| db_err(&path, e))
    }

    /// The actor later writes are recorded under.
    pub fn set_actor(&mut self, actor: &str) {
        self.actor = actor.to_string();
    }

    /// Renew the patrol lease now, without writing anything else (before a step that
    /// waits outside the database, such as a push). Nothing to do when not fenced.
    pub fn renew_lease(&mut self) -> Result<()> {
        if self.fence.is_some() {
            self.write(|_| Ok(()))?;
        }
        Ok(())
    }

    /// Fence every later write with a patrol lease token, renewing the lease by `lease`
    /// from each write (see `town::patrol`).
    pub fn set_fence(&mut self, fence: Option<(i64, Duration)>) {
        self.fence = fence;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read-only access. Reads outside `write` see the last committed state.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Run one mutation: `BEGIN IMMEDIATE`, the closure, commit. A closure that changes
    /// rows must append at least one event through `Tx::event` (the audit trail of
    /// `gt log`); one that finds nothing to do may append none.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let actor = self.actor.clone();
        self.write_as(&actor, f)
    }

    /// `write`, in the name of `actor` (an agent whose request is applied).
    pub fn write_as<T>(&mut self, actor: &str, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_err(&path, e))?;
        if let Some((token, lease)) = self.fence {
            let current: Option<i64> = tx
                .query_row("SELECT token FROM leases WHERE name = 'patrol'", [], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| db_err(&path, e))?;
            if current != Some(token) {
                let current = current
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none".into());
                return Err(Error::LeaseLost { token, current });
            }
            tx.execute(
                "UPDATE leases SET expires_at = max(expires_at, ?2) WHERE name = 'patrol' AND token = ?1",
                rusqlite::params![token, crate::util::now_ms().saturating_add(crate::util::millis(lease))],
            )
            .map_err(|e| db_err(&path, e))?;
        }
        let mut w = Tx {
            tx,
            actor: actor.to_string(),
            events: 0,
            path: path.clone(),
        };
        let changes_before = w.tx.total_changes();
        let out = f(&mut w)?;
        debug_assert!(
            w.events > 0 || w.tx.total_changes() == changes_before,
            "a mutation must append its event"
        );
        w.tx.commit().map_err(|e| db_err(&path, e))?;
        Ok(out)
    }
}

/// A write transaction with its actor; dropping it without commit rolls back.
pub struct Tx<'c> {
    tx: Transaction<'c>,
    actor: String,
    events: usize,
    path: PathBuf,
}

impl<'c> std::ops::Deref for Tx<'c> {
    type Target = Transaction<'c>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl Tx<'_> {
    /// Append the event row of this mutation.
    pub fn event(&mut self, kind: &str, subject: &str, data: serde_json::Value) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO events (at, actor, kind, subject, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now_ms(), self.actor, kind, subject, data.to_string()],
            )
            .map_err(|e| db_err(&self.path, e))?;
        self.events += 1;
        Ok(())
    }

    /// Map a SQLite error with this database's path.
    pub fn err(&self, e: rusqlite::Error) -> Error {
        db_err(&self.path, e)
    }
}

/// True while the circuit breaker pauses new dispatches (`gt resume` closes it).
pub fn breaker_open(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT 1 FROM meta WHERE key = 'breaker_open'", [], |_| {
        Ok(())
    })
    .optional()
    .map(|o| o.is_some())
}

/// True while a patrol holds an unexpired lease (a pass runs, or its holder died less
/// than a lease ago).
pub fn patrol_lease_live(conn: &Connection, now: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT expires_at > ?1 FROM leases WHERE name = 'patrol'",
        [now],
        |r| r.get(0),
    )
    .optional()
    .map(|o| o.unwrap_or(false))
}

/// A row with a `version` column, named for messages: `bead api-3k9`.
pub struct Versioned<'a> {
    pub table: &'static str,
    pub kind: &'static str,
    pub key_col: &'static str,
    pub key: &'a str,
}

/// Compare-and-swap: `UPDATE table SET … , version = version + 1 WHERE key = ? AND
/// version = expected`. Zero rows means someone else moved first: a typed conflict
/// naming both versions and who wrote the newer one. Returns the new version.
pub fn cas_update(
    tx: &Tx,
    row: &Versioned,
    expected: i64,
    set: &[(&str, &dyn rusqlite::ToSql)],
) -> Result<i64> {
    let mut sql = format!("UPDATE {} SET ", row.table);
    for (i, (col, _)) in set.iter().enumerate() {
        sql += &format!("{col} = ?{}, ", i + 3);
    }
    sql += &format!(
        "version = version + 1 WHERE {} = ?1 AND version = ?2",
        row.key_col
    );
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&row.key, &expected];
    params.extend(set.iter().map(|(_, v)| *v));
    let n = tx.execute(&sql, params.as_slice()).map_err(|e| tx.err(e))?;
    if n == 1 {
        return Ok(expected + 1);
    }
    let current: Option<i64> = tx
        .query_row(
            &format!(
                "SELECT version FROM {} WHERE {} = ?1",
                row.table, row.key_col
            ),
            [row.key],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| tx.err(e))?;
    let Some(current) = current else {
        return Err(Error::not_found(format!("{} {}", row.kind, row.key), None));
    };
    let winner = events::last_actor(tx, row.key)?.unwrap_or_else(|| "another writer".into());
    Err(Error::conflict(
        format!(
            "{} {} changed under you: you read version {expected}, it is now version {current} (written by {winner})",
            row.kind, row.key
        ),
        Some(format!(
            "re-read it with `gt {} show {}` and decide again",
            row.kind, row.key
        )),
    ))
}

/// The refusal of a database gt did not make: empty, or another application's.
fn not_ours(conn: &Connection, path: &Path, app_id: i64) -> Error {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name LIMIT 6")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    let aside = "nothing was changed; move .gt/ aside (e.g. `mv .gt .gt.not-a-town`) and run \
                 `gt init` here, or point --town at a directory made by `gt init`";
    let msg = if tables.is_empty() && app_id == 0 {
        "the town database is empty (no gt schema in it): it was not made by a finished \
         `gt init`; refusing to write it"
            .to_string()
    } else {
        let mut names = tables
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if tables.len() > 5 {
            names += ", …";
        }
        format!(
            "not a gt town database (application id {app_id:#x}{}); refusing to write it",
            if names.is_empty() {
                String::new()
            } else {
                format!(", tables {names}")
            }
        )
    };
    Error::Database {
        path: path.into(),
        msg,
        hint: Some(aside.into()),
    }
}

fn disk_full() -> (String, Option<String>) {
    (
        "the disk is full; nothing was changed".to_string(),
        Some("free some space and run the command again".to_string()),
    )
}

fn storage_full(db: &Path) -> bool {
    let probe = db.with_extension("space-probe");
    let r = std::fs::write(&probe, [0u8; 8192]);
    let _ = std::fs::remove_file(&probe);
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::StorageFull)
}

/// Turn a SQLite error into a message a user can act on.
pub fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    let (msg, hint) = match e.sqlite_error_code() {
        Some(C::NotADatabase) => (
            "not a SQLite database (the file is corrupt or something else)".to_string(),
            Some(
                "restore .gt/town.db from a backup, or move it aside and `gt init` a new town"
                    .to_string(),
            ),
        ),
        Some(C::DatabaseCorrupt) => (
            format!("the database is corrupt: {e}"),
            Some("restore .gt/town.db from a backup".to_string()),
        ),
        Some(C::ReadOnly) | Some(C::CannotOpen) | Some(C::PermissionDenied) => (
            format!("cannot write the town database: {e}"),
            Some("check that the town directory and .gt/ are writable by this user".to_string()),
        ),
        Some(C::DiskFull) => disk_full(),
        // SQLite reports a full disk met while growing the WAL or its index as an I/O
        // error; tell the two apart with a small probe write beside the database.
        Some(C::SystemIoFailure) if storage_full(path) => disk_full(),
        Some(C::SystemIoFailure) => (
            format!("disk I/O error writing the town database: {e}"),
            Some("check the disk (dmesg); the last committed state is intact".to_string()),
        ),
        Some(C::DatabaseBusy) | Some(C::DatabaseLocked) => {
            return Error::Busy {
                path: path.into(),
                msg: format!(
                    "the town database stayed locked (a write waits up to {}s): {e}",
                    BUSY_TIMEOUT.as_secs()
                ),
            };
        }
        _ => (e.to_string(), None),
    };
    Error::Database {
        path: path.into(),
        msg,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(db: &Db) -> (i64, i64) {
        db.conn()
            .query_row(
                "SELECT token, expires_at FROM leases WHERE name = 'patrol'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    #[test]
    fn a_fenced_write_renews_the_lease_and_a_lost_lease_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut db = Db::create(&d.path().join("town.db")).unwrap();
        let soon = crate::util::now_ms() + 100;
        db.write(|tx| {
            tx.execute(
                "INSERT INTO leases (name, holder, token, expires_at) VALUES ('patrol', 'me', 7, ?1)",
                [soon],
            )
            .map_err(|e| tx.err(e))?;
            tx.event("test.lease", "patrol", serde_json::json!({}))
        })
        .unwrap();
        db.set_fence(Some((7, Duration::from_secs(60))));
        db.write(|tx| tx.event("test.work", "patrol", serde_json::json!({})))
            .unwrap();
        let (token, expires) = lease(&db);
        assert_eq!(token, 7);
        assert!(expires >= soon + 59_000, "renewed to {expires}");

        // Another patrol took over: this one's writes fail and change nothing.
        db.set_fence(None);
        db.write(|tx| {
            tx.execute("UPDATE leases SET token = 8, expires_at = 0", [])
                .map_err(|e| tx.err(e))?;
            tx.event("test.takeover", "patrol", serde_json::json!({}))
        })
        .unwrap();
        db.set_fence(Some((7, Duration::from_secs(60))));
        let e = db
            .write(|tx| tx.event("test.late", "patrol", serde_json::json!({})))
            .unwrap_err();
        assert!(matches!(e, Error::LeaseLost { token: 7, .. }), "{e}");
        assert_eq!(lease(&db), (8, 0));
    }
}
