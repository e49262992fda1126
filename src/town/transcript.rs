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
/// Lines asked of the engine for a gate's output (the byte cap applies after). An
/// agent's output is read whole: its usage is summed over all of it.
const TAIL_LINES: usize = 20_000;
/// Transcripts kept per bead; older attempts' go first.
const KEEP_PER_BEAD: usize = 10;
/// A usage line longer than this is not parsed (a Claude `result` carries the run's
/// final message: tens of KiB are ordinary, the engine keeps at most 10 MB in all).
const MAX_USAGE_LINE: usize = 8 << 20;
/// Starts of a usage object tried in one line (each may cost a scan of the line).
const MAX_USAGE_STARTS: usize = 8;

fn dir(town: &Town, rig: &str, bead: &str) -> PathBuf {
    town.root.join("transcripts").join(rig).join(bead)
}

pub fn path(town: &Town, rig: &str, bead: &str, dispatch: i64) -> PathBuf {
    dir(town, rig, bead).join(format!("{dispatch}.log"))
}

/// The last `MAX_BYTES` of `text`, cut at a character boundary.
fn tail(text: &str) -> &str {
    tail_of(text, MAX_BYTES)
}

fn tail_of(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    &text[cut..]
}

/// Keep the output of `container` as dispatch `dispatch`'s transcript, and its usage.
/// The whole output the engine kept is read: usage is summed over all of it (a Codex
/// run's every turn, a Claude `result` however much follows it) and recorded first, so
/// a transcript that cannot be written (a full disk) loses no cost. A container the
/// engine no longer has leaves what an earlier save kept.
pub fn save(
    town: &mut Town,
    rt: &dyn Runtime,
    container: &str,
    rig: &str,
    bead: &str,
    dispatch: i64,
) -> Result<()> {
    let text = match rt.logs(container, usize::MAX) {
        Ok(t) => t,
        Err(Error::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut meter = Meter::default();
    meter.feed(&text);
    // The usage first: a transcript that cannot be written costs no usage, and the
    // other way round.
    let recorded = match meter.usage() {
        Some(u) => super::budget::record(town, dispatch, bead, rig, &u, meter.bytes),
        None => Ok(()),
    };
    // An agent may print a key it was given: the host never stores a known secret value.
    // Redacted with a margin, then cut: a value across the cut is redacted whole.
    let margin = 2 * super::secret::MAX_BYTES as usize;
    let text = super::secret::redact(town, tail_of(&text, MAX_BYTES + margin));
    let kept = tail(&text);
    let d = dir(town, rig, bead);
    std::fs::create_dir_all(&d).map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
    crate::util::write_atomic(&path(town, rig, bead, dispatch), kept.as_bytes())?;
    rotate(&d);
    recorded
}

/// Stop `container` (SIGTERM, SIGKILL after `grace`) without removing it, then keep
/// what it said, to its last line (what it printed while stopping, a Claude `result`
/// included), as [`keep`] does: for a caller about to remove a running agent's
/// container (`gt stop`, `gt drain`, `gt polecat nuke`). The caller removes it after.
/// A failure to keep the output is said, not fatal; a runtime that cannot stop it is.
#[allow(clippy::too_many_arguments)]
pub fn stop_and_keep(
    town: &mut Town,
    rt: &dyn Runtime,
    container: &str,
    rig: &str,
    bead: &str,
    dispatch: i64,
    grace: std::time::Duration,
) -> Result<()> {
    match rt.stop(container, grace) {
        Ok(()) | Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    keep(town, rt, container, rig, bead, dispatch);
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

/// Tokens and cost as the agent's CLI reported them in its output, read line by line
/// over the whole stream: Claude Code's stream-json `result` lines (summed: one per run,
/// each the run's total with `total_cost_usd`; a later line never replaces an earlier
/// one, so an agent cannot hide a cost behind a `result` of its own), and Codex's `--json`
/// `turn.completed` events (summed). The output is the agent's: every number is checked
/// (finite, not negative, not absurd) and then bounded ([`super::budget::record`]).
#[derive(Debug, Default)]
pub struct Meter {
    /// The line being read (a chunk may end inside one).
    line: Vec<u8>,
    /// The line being read is past `MAX_USAGE_LINE`: skipped to its end.
    skipping: bool,
    claude: Option<crate::state::usage::Usage>,
    codex: Option<crate::state::usage::Usage>,
    /// Bytes of output read: what a reported cost is weighed against.
    pub bytes: u64,
}

impl Meter {
    /// Read `chunk` of the output (any split: lines are joined across chunks).
    pub fn feed(&mut self, chunk: &str) {
        self.bytes += chunk.len() as u64;
        let mut rest = chunk.as_bytes();
        while !rest.is_empty() {
            let (part, done) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], Some(i + 1)),
                None => (rest, None),
            };
            if !self.skipping {
                if self.line.len() + part.len() > MAX_USAGE_LINE {
                    self.skipping = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(part);
                }
            }
            match done {
                Some(n) => {
                    self.end_line();
                    rest = &rest[n..];
                }
                None => break,
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let skipped = std::mem::replace(&mut self.skipping, false);
        if !skipped {
            self.parse(&line);
        }
    }

    fn parse(&mut self, line: &[u8]) {
        use crate::state::usage::Usage;
        // Only the two kinds that carry usage are parsed (most lines are neither).
        let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
        if !has(b"\"result\"") && !has(b"turn.completed") {
            return;
        }
        // The usage object starts at `{"type":"result"` (or `"turn.completed"`), wherever
        // it is in the line: output printed without a line end just before it (a
        // background process's) glues onto it and must not hide it. Each such start is
        // tried in turn; the first that parses as a JSON value counts, and whatever
        // follows it is ignored. A start that does not parse may cost a scan of the rest
        // of the line: at most `MAX_USAGE_STARTS` are tried. (An agent that glues more
        // decoys before its CLI's line hides its cost, as one that kills its CLI does:
        // until costs come from the wire, a report is the agent's word.)
        const STARTS: [&[u8]; 2] = [b"{\"type\":\"result\"", b"{\"type\":\"turn.completed\""];
        let mut at = 0;
        let mut tries = 0;
        // A whole line that is one JSON object first: the CLIs do not always put `type`
        // first (Claude Code's `result` line starts with `duration_api_ms`).
        let whole = line.trim_ascii();
        let v = if whole.starts_with(b"{")
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(whole)
        {
            v
        } else {
            loop {
                if tries == MAX_USAGE_STARTS {
                    return;
                }
                tries += 1;
                let Some(i) = line[at..]
                    .iter()
                    .enumerate()
                    .position(|(i, _)| STARTS.iter().any(|s| line[at + i..].starts_with(s)))
                else {
                    return;
                };
                let from = &line[at + i..];
                at += i + 1;
                let mut values =
                    serde_json::Deserializer::from_slice(from).into_iter::<serde_json::Value>();
                if let Some(Ok(v)) = values.next() {
                    break v;
                }
            }
        };
        let count =
            |v: &serde_json::Value| v.as_i64().filter(|n| (0..=1_000_000_000_000).contains(n));
        let u = &v["usage"];
        match v["type"].as_str() {
            Some("result") => {
                let input: i64 = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .filter_map(|k| count(&u[*k]))
                .sum();
                let c = self.claude.get_or_insert_with(Usage::default);
                c.input_tokens = c.input_tokens.saturating_add(input);
                c.output_tokens = c
                    .output_tokens
                    .saturating_add(count(&u["output_tokens"]).unwrap_or(0));
                if let Some(cost) = v["total_cost_usd"]
                    .as_f64()
                    .filter(|c| c.is_finite() && (0.0..=1e6).contains(c))
                {
                    c.cost_usd = Some(c.cost_usd.unwrap_or(0.0) + cost);
                }
            }
            Some("turn.completed") => {
                let c = self.codex.get_or_insert_with(Usage::default);
                c.input_tokens = c
                    .input_tokens
                    .saturating_add(count(&u["input_tokens"]).unwrap_or(0));
                c.output_tokens = c
                    .output_tokens
                    .saturating_add(count(&u["output_tokens"]).unwrap_or(0));
            }
            _ => {}
        }
    }

    /// The usage read so far (a last line without its line end included).
    pub fn usage(&mut self) -> Option<crate::state::usage::Usage> {
        if !self.line.is_empty() || self.skipping {
            self.end_line();
        }
        // Both kinds in one output is no real CLI's: summed, so that neither hides the
        // other.
        match (&self.claude, &self.codex) {
            (Some(c), Some(x)) => Some(crate::state::usage::Usage {
                input_tokens: c.input_tokens.saturating_add(x.input_tokens),
                output_tokens: c.output_tokens.saturating_add(x.output_tokens),
                cost_usd: c.cost_usd,
            }),
            (c, x) => c.clone().or_else(|| x.clone()),
        }
    }
}

/// The usage in `text` (all of it), as [`Meter`] reads it.
pub fn usage_in(text: &str) -> Option<crate::state::usage::Usage> {
    let mut m = Meter::default();
    m.feed(text);
    m.usage()
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
    fn usage_is_read_across_chunk_splits_long_lines_and_later_results() {
        let line =
            "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}\n";
        let mut m = Meter::default();
        for _ in 0..100 {
            // Each line in two reads, split inside it.
            let (a, b) = line.split_at(17);
            m.feed(a);
            m.feed(b);
        }
        let u = m.usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (300, 100));
        assert_eq!(m.bytes, 100 * line.len() as u64);
        // A result line far over 64 KiB counts; a later result adds, never replaces.
        let big = format!(
            "{{\"type\":\"result\",\"result\":\"{}\",\"total_cost_usd\":0.5,\"usage\":{{\"output_tokens\":9}}}}\n{{\"type\":\"result\",\"total_cost_usd\":0,\"usage\":{{}}}}",
            "x".repeat(200_000)
        );
        let u = usage_in(&big).unwrap();
        assert_eq!((u.output_tokens, u.cost_usd), (9, Some(0.5)));
        // A forged Claude result does not hide Codex turns.
        let both = format!("{line}{{\"type\":\"result\",\"usage\":{{\"input_tokens\":0}}}}\n");
        assert_eq!(usage_in(&both).unwrap().input_tokens, 3);
        // A line past the parse limit is skipped whole, the next one read.
        let mut m = Meter::default();
        m.feed(&"{".repeat(MAX_USAGE_LINE + 10));
        m.feed("\n");
        m.feed(line);
        assert_eq!(m.usage().unwrap().input_tokens, 3);
    }

    #[test]
    fn a_result_line_whose_type_is_not_its_first_key_counts() {
        // As Claude Code 2.1 prints it.
        let line = "{\"duration_api_ms\":82,\"stop_reason\":\"end_turn\",\"total_cost_usd\":0.0016,\"usage\":{\"input_tokens\":200,\"output_tokens\":20},\"type\":\"result\"}\n";
        let u = usage_in(line).unwrap();
        assert_eq!((u.input_tokens, u.cost_usd), (200, Some(0.0016)));
    }

    #[test]
    fn a_result_glued_to_a_partial_line_counts() {
        let result = "{\"type\":\"result\",\"total_cost_usd\":0.7,\"usage\":{\"input_tokens\":900,\"output_tokens\":90}}";
        let turn =
            "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":4,\"output_tokens\":2}}";
        for noise in [
            "noise without a line end ",
            "{\"type\":\"result\",\"cut\":[",
            "{\"type\":\"assistant\",\"message\":{\"type\":",
            "{\"type\":\"result\"{\"type\":\"result\",",
            "\u{1b}[2K\r",
        ] {
            let u = usage_in(&format!("{noise}{result}\n")).unwrap();
            assert_eq!((u.input_tokens, u.cost_usd), (900, Some(0.7)), "{noise:?}");
            // Trailing text after the object is ignored.
            let u = usage_in(&format!("{noise}{result} trailing {{\n")).unwrap();
            assert_eq!(u.cost_usd, Some(0.7), "{noise:?}");
            let u = usage_in(&format!("{noise}{turn}\n")).unwrap();
            assert_eq!((u.input_tokens, u.output_tokens), (4, 2), "{noise:?}");
        }
        // A few decoy starts that do not parse, then the real one; many are not all
        // tried (each may cost a scan of the line).
        let decoys = |n| "{\"type\":\"result\",\"k\":[".repeat(n);
        let u = usage_in(&format!("{}{result}\n", decoys(MAX_USAGE_STARTS - 1))).unwrap();
        assert_eq!(u.cost_usd, Some(0.7));
        let u = usage_in(&format!("{}{}\n", decoys(1000), "1,".repeat(100_000)));
        assert!(u.is_none(), "{u:?}");
        // Mentioning the kinds is not a usage line.
        assert!(usage_in("the \"result\" of turn.completed\n").is_none());
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
