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
    town: &mut Town,
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
    // An agent may print a key it was given: the host never stores a known secret value.
    let text = super::secret::redact(town, &text);
    let kept = tail(&text);
    crate::util::write_atomic(&path(town, rig, bead, dispatch), kept.as_bytes())?;
    rotate(&d);
    if let Some(u) = usage_in(kept) {
        let at = crate::util::now_ms();
        town.db.write(|tx| {
            crate::state::usage::record(tx, dispatch, bead, rig, &u, at).map_err(|e| tx.err(e))?;
            tx.event(
                "usage.recorded",
                bead,
                serde_json::json!({ "dispatch": dispatch, "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "cost_usd": u.cost_usd }),
            )
        })?;
    }
    Ok(())
}

/// Where the output of a merge request's gate run is kept (beside its bead's transcripts).
pub fn gate_path(town: &Town, rig: &str, bead: &str, mr: i64, run: i64) -> PathBuf {
    dir(town, rig, bead).join(format!("gate-mr{mr}-{run}.log"))
}

/// Keep the output of gate container `container` (redacted, bounded) and return it.
pub fn save_gate(
    town: &Town,
    rt: &dyn Runtime,
    container: &str,
    rig: &str,
    bead: &str,
    mr: i64,
    run: i64,
) -> Result<String> {
    let text = match rt.logs(container, TAIL_LINES) {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => {
            return Ok(
                std::fs::read_to_string(gate_path(town, rig, bead, mr, run)).unwrap_or_default()
            );
        }
        Err(e) => return Err(e),
    };
    let d = dir(town, rig, bead);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    let text = super::secret::redact(town, &text);
    let kept = tail(&text).to_string();
    crate::util::write_atomic(&gate_path(town, rig, bead, mr, run), kept.as_bytes())?;
    Ok(kept)
}

/// Tokens and cost as the agent's CLI reported them in its output: Claude Code's
/// stream-json `result` line (the last one wins: it is the run's total, with
/// `total_cost_usd`), or the sum of Codex's `--json` `turn.completed` events. The output
/// is the agent's: every number is checked (finite, not negative, not absurd).
pub fn usage_in(text: &str) -> Option<crate::state::usage::Usage> {
    use crate::state::usage::Usage;
    let count = |v: &serde_json::Value| v.as_i64().filter(|n| (0..=1_000_000_000_000).contains(n));
    let mut claude: Option<Usage> = None;
    let mut codex: Option<Usage> = None;
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('{') || line.len() > 1 << 16 {
            continue;
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let u = &v["usage"];
        match v["type"].as_str() {
            Some("result") => {
                let input = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .filter_map(|k| count(&u[*k]))
                .sum();
                claude = Some(Usage {
                    input_tokens: input,
                    output_tokens: count(&u["output_tokens"]).unwrap_or(0),
                    cost_usd: v["total_cost_usd"]
                        .as_f64()
                        .filter(|c| c.is_finite() && (0.0..=1e6).contains(c)),
                });
            }
            Some("turn.completed") => {
                let c = codex.get_or_insert_with(Usage::default);
                c.input_tokens += count(&u["input_tokens"]).unwrap_or(0);
                c.output_tokens += count(&u["output_tokens"]).unwrap_or(0);
            }
            _ => {}
        }
    }
    claude.or(codex)
}

/// `save`, where a failure to keep the output is said, not fatal (a hand-over or a nuke
/// matters more than its transcript).
pub fn keep(
    town: &mut Town,
    rt: &dyn Runtime,
    container: &str,
    rig: &str,
    bead: &str,
    dispatch: i64,
) {
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

/// The output of attempt `attempt` (from 1; default the latest) at `bead`: its kept
/// transcript, or, while it runs, its container's output.
pub fn of_bead(
    town: &Town,
    rt: &dyn Runtime,
    bead: &str,
    attempt: Option<usize>,
    lines: usize,
) -> Result<String> {
    let ds: Vec<_> = crate::state::dispatches::for_bead(town.db.conn(), bead)
        .map_err(|e| town.db_err(e))?
        .into_iter()
        .filter(|d| d.container_id.is_some())
        .collect();
    if ds.is_empty() {
        return Err(Error::not_found(
            format!("an attempt at bead {bead}"),
            Some("`gt bead show BEAD` tells whether it was dispatched".into()),
        ));
    }
    let n = attempt.unwrap_or(ds.len());
    let Some(d) = n.checked_sub(1).and_then(|i| ds.get(i)) else {
        return Err(Error::not_found(
            format!("attempt {n} at bead {bead}"),
            Some(format!("it has {} attempt(s)", ds.len())),
        ));
    };
    let rig = crate::state::beads::get(town.db.conn(), bead)
        .map_err(|e| town.db_err(e))?
        .map(|b| b.rig)
        .unwrap_or_default();
    if let Some(t) = read(town, &rig, bead, d.id) {
        return Ok(last_lines(&t, lines));
    }
    match d.container_id.as_deref().map(|c| rt.logs(c, lines)) {
        Some(Ok(out)) => Ok(out),
        _ => Err(Error::not_found(
            format!("output of attempt {n} at bead {bead}"),
            Some("its container is gone and no transcript was kept".into()),
        )),
    }
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
    fn usage_is_read_from_claude_results_and_codex_turns() {
        let claude = "gt: working\n{\"type\":\"assistant\"}\n{\"type\":\"result\",\"total_cost_usd\":0.0123,\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":7}}\n";
        let u = usage_in(claude).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (15, 7));
        assert_eq!(u.cost_usd, Some(0.0123));
        let codex = "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":100,\"cached_input_tokens\":50,\"output_tokens\":20}}\n{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}";
        let u = usage_in(codex).unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.cost_usd),
            (101, 22, None)
        );
        // Forged or absurd numbers count as nothing.
        let bad = "{\"type\":\"result\",\"total_cost_usd\":-5,\"usage\":{\"input_tokens\":-1,\"output_tokens\":1e300}}";
        let u = usage_in(bad).unwrap();
        assert_eq!((u.input_tokens, u.output_tokens, u.cost_usd), (0, 0, None));
        assert!(usage_in("plain output\n").is_none());
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
