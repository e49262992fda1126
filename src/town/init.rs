//! `gt init`: create a town directory with gt.toml and a fresh database.

use super::{CONFIG_FILE, DB_DIR, DB_FILE};
use crate::error::{Error, IoContext, Result};
use crate::state::Db;
use crate::util::{now_ms, random_base36, write_atomic};
use std::path::{Path, PathBuf};

#[derive(Debug, serde::Serialize)]
pub struct Initialized {
    pub path: PathBuf,
    pub town_id: String,
}

pub fn init(dir: &Path) -> Result<Initialized> {
    std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let root = std::path::absolute(dir).ctx(|| format!("resolving {}", dir.display()))?;
    let gt_dir = root.join(DB_DIR);
    if gt_dir.exists() {
        return Err(Error::conflict(
            format!("{} is already a gt town", root.display()),
            Some("use it as it is; `gt status` shows what it holds".to_string()),
        ));
    }
    // Config first: if the directory is not writable we fail before making .gt/.
    let config_path = root.join(CONFIG_FILE);
    if !config_path.exists() {
        write_atomic(&config_path, super::config::DEFAULT_TOML.as_bytes())?;
    } else {
        // Validate a gt.toml the user prepared before init.
        super::config::load(&config_path)?;
    }
    std::fs::create_dir(&gt_dir).ctx(|| format!("creating {}", gt_dir.display()))?;
    // Only its owner may enter the town: worktrees hold what agents made (an executable
    // with the setuid bit, say), and the database holds every dispatch token.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
        .ctx(|| format!("making {} private (mode 0700)", root.display()))?;
    let town_id = random_base36(6);
    let created = (|| {
        let mut db = Db::create(&gt_dir.join(DB_FILE))?;
        db.write(|tx| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('town_id', ?1), ('created_at', ?2)",
                rusqlite::params![town_id, now_ms().to_string()],
            )
            .map_err(|e| tx.err(e))?;
            tx.event(
                "town.init",
                "town",
                serde_json::json!({ "town_id": town_id, "path": root }),
            )
        })
    })();
    if let Err(e) = created {
        // Leave nothing half-made behind: a .gt/ without a valid database would make
        // every later command fail.
        let _ = std::fs::remove_dir_all(&gt_dir);
        return Err(e);
    }
    Ok(Initialized {
        path: root,
        town_id,
    })
}
