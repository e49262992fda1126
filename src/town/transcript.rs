//! Transcripts: each dispatch's output (stdout and stderr), kept by the host once its
//! container ends, so `gt peek` works after exit and a death comes with its last words
//! ("exited with code 127" with `claude: not found`). Stored raw (it is data; it is
//! escaped where a person sees it) under the host-only `transcripts/<rig>/<bead>/`.

use super::Town;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use std::path::PathBuf;

/// A transcript keeps at most this much of a dispatch's output: its end.
pub const MAX_BYTES: usize = 1 << 20;
/// Lines asked of the engine (the byte cap applies after).
const TAIL_LINES: usize = 20_000;
/// Transcripts kept per bead; older attempts' go first.
const KEEP_PER_BEAD: usize = 10;

fn dir(town: &Town, rig: &str, bead: &str) -> PathBuf {
    town.root.join("transcripts").join(rig).join(bead)
}

pub fn path(town: &Town, rig: &str, bead: &str, dispatch: i64) -> PathBuf {
    dir(town, rig, bead).join(format!("{dispatch}.log"))
}

/// The last `MAX_BYTES` of `text`, cut at a character boundary.
fn tail(text: &str) -> &str {
    if text.len() <= MAX_BYTES {
        return text;
    }
    let mut cut = text.len() - MAX_BYTES;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    &text[cut..]
}

/// Keep the output of `container` as dispatch `dispatch`'s transcript. A container the
/// engine no longer has leaves what an earlier save kept.
pub fn save(
    town: &Town,
    rt: &dyn Runtime,
    container: &str,
    rig: &str,
    bead: &str,
    dispatch: i64,
) -> Result<()> {
    let text = match rt.logs(container, TAIL_LINES) {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let d = dir(town, rig, bead);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    crate::util::write_atomic(&path(town, rig, bead, dispatch), tail(&text).as_bytes())?;
    rotate(&d);
    Ok(())
}

/// `save`, where a failure to keep the output is said, not fatal (a hand-over or a nuke
/// matters more than its transcript).
pub fn keep(town: &Town, rt: &dyn Runtime, container: &str, rig: &str, bead: &str, dispatch: i64) {
    if let Err(e) = save(town, rt, container, rig, bead, dispatch) {
        tracing::warn!("transcript of {container} not kept: {e}");
    }
}

/// Drop the oldest transcripts of a bead beyond `KEEP_PER_BEAD`.
fn rotate(d: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(d) else {
        return;
    };
    let mut ids: Vec<i64> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    ids.sort_unstable();
    let excess = ids.len().saturating_sub(KEEP_PER_BEAD);
    for id in &ids[..excess] {
        let _ = std::fs::remove_file(d.join(format!("{id}.log")));
    }
}

/// A kept transcript, if there is one.
pub fn read(town: &Town, rig: &str, bead: &str, dispatch: i64) -> Option<String> {
    std::fs::read(path(town, rig, bead, dispatch))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The last non-empty line, at most 200 characters: what a death record quotes.
pub fn last_words(text: &str) -> Option<String> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(line.trim().chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_cut_at_a_character_boundary() {
        let s = "é".repeat(MAX_BYTES);
        let t = tail(&s);
        assert!(t.len() <= MAX_BYTES + 1);
        assert!(t.chars().all(|c| c == 'é'));
        assert_eq!(tail("short"), "short");
    }

    #[test]
    fn last_words_are_the_last_non_empty_line() {
        assert_eq!(
            last_words("gt: working\nsh: claude: not found\n\n").as_deref(),
            Some("sh: claude: not found")
        );
        assert_eq!(last_words("\n \n"), None);
        assert_eq!(last_lines("a\nb\n\nc\n", 2), "b\nc");
    }
}
