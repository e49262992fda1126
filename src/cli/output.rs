//! Rendering: aligned tables for people, stable JSON for programs.
//!
//! Text an agent can influence (mail, checkpoint notes and heads, container output, bead
//! text, event data) is hostile: before it reaches a person's terminal it goes through
//! [`safe`] (multi-line text) or [`safe_line`] (one line, e.g. a table cell), which show
//! control characters as visible escapes. JSON output is exact (serde escapes it).

use crate::error::{Error, Result};
use serde::Serialize;
use std::borrow::Cow;
use std::io::Write;

/// `s` made safe to print on a terminal, keeping its line breaks and tabs, a known
/// secret value redacted (see [`redact_secrets`]): every other
/// C0 control (ESC, BEL, CR, …), DEL, the C1 controls (U+0080–U+009F), the Unicode
/// bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the bidi
/// marks (U+061C, U+200E, U+200F) and the line and paragraph separators (U+2028,
/// U+2029) are shown as
/// escapes (`\x1b`, `\r`, `\u{9b}`, `\u{202e}`). A backslash is not escaped itself:
/// the output is for reading, `--json` is the exact form.
pub fn safe(s: &str) -> Cow<'_, str> {
    match redacted(s) {
        Some(r) => Cow::Owned(escape(&r, true).into_owned()),
        None => escape(s, true),
    }
}

/// [`safe`] for text that must stay on one line (a table cell, a field): line feeds and
/// tabs are escaped too (`\n`, `\t`).
pub fn safe_line(s: &str) -> Cow<'_, str> {
    match redacted(s) {
        Some(r) => Cow::Owned(escape(&r, false).into_owned()),
        None => escape(s, false),
    }
}

/// `s` with the town's known secret values redacted, when it holds one: whatever a
/// person sees of agent text (a table, `gt top`, a pager) shows none.
fn redacted(s: &str) -> Option<String> {
    let r = redactor()?.redact(s);
    (r != s).then_some(r)
}

fn needs_escape(c: char, multi_line: bool) -> bool {
    match c {
        '\n' | '\t' => !multi_line,
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        // The bidi marks (they reorder what follows them too) and Unicode's line and
        // paragraph separators (a line break to a pager and many terminals).
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

fn escape(s: &str, multi_line: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c, multi_line)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !needs_escape(c, multi_line) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x80 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    Cow::Owned(out)
}

/// The first `n` characters of `s` (all of it when shorter), e.g. a commit or an id
/// shortened for a table; never splits a character, whatever `s` holds.
pub fn short(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The town's secret values, once a command has opened its town: nothing `gt` prints
/// shows one (an agent's checkpoint note, mail, done note, output or event data may hold
/// a key it was given), whichever view prints it.
static REDACTOR: std::sync::OnceLock<crate::town::secret::Redactor> = std::sync::OnceLock::new();

/// Redact `r`'s values from everything printed from now on.
pub fn redact_secrets(r: crate::town::secret::Redactor) {
    let _ = REDACTOR.set(r);
}

fn redactor() -> Option<&'static crate::town::secret::Redactor> {
    REDACTOR.get().filter(|r| !r.is_empty())
}

/// Print `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(value).map_err(|e| Error::Other(e.to_string()))?;
    match redactor() {
        Some(r) => write_line(&r.redact_json(&s)),
        None => write_line(&s),
    }
}

/// Print a line to stdout; a closed pipe (`gt bead list | head`) is not an error.
pub fn println_out(s: &str) -> Result<()> {
    match redactor() {
        Some(r) => write_line(&r.redact(s)),
        None => write_line(s),
    }
}

fn write_line(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{s}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| Error::io("writing to stdout", e)),
    }
}

/// Write `bytes` to stdout exactly as they are (`gt peek --raw`); a closed pipe is not an
/// error.
pub fn print_raw(bytes: &[u8]) -> Result<()> {
    let redacted;
    let bytes = match (redactor(), std::str::from_utf8(bytes)) {
        (Some(r), Ok(text)) => {
            redacted = r.redact(text);
            redacted.as_bytes()
        }
        _ => bytes,
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| Error::io("writing to stdout", e)),
    }
}

/// A table with a header row; columns are padded to their widest cell (counted in
/// characters). Every cell is printed through [`safe_line`]: no caller can let a control
/// character or a line break of a cell reach the terminal.
/// How a column picks a cell's colour from its text.
pub type CellColour = fn(&str) -> Option<Colour>;

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns whose cells are coloured, by a function of the cell's (escaped) text.
    colours: Vec<(usize, CellColour)>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            colours: Vec::new(),
        }
    }

    /// Colour the cells of column `col` by `f` (on a terminal only; see [`colour_on`]).
    /// The padding is computed on the text, so columns stay aligned.
    pub fn colour(&mut self, col: usize, f: CellColour) {
        self.colours.push((col, f));
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn print(&self) -> Result<()> {
        println_out(&self.render_with(colour_on()))
    }

    /// The table as text (no colour), without a trailing newline.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    fn render_with(&self, colour: bool) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|c| safe_line(c).into_owned()).collect())
            .collect();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (i, c) in row.iter().enumerate() {
                if i >= widths.len() {
                    widths.push(0);
                }
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String], painted: bool| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let last = i + 1 == cells.len();
                let pad = if last {
                    0
                } else {
                    widths[i].saturating_sub(c.chars().count()) + 2
                };
                let wanted = self
                    .colours
                    .iter()
                    .find(|(col, _)| *col == i)
                    .and_then(|(_, f)| f(c));
                match wanted {
                    Some(k) if painted => s += &paint_if(colour, c, k),
                    _ => s += c,
                }
                s += &" ".repeat(pad);
            }
            s.trim_end().to_string()
        };
        let mut out = String::new();
        out += &line(
            &self
                .header
                .iter()
                .map(|h| h.to_uppercase())
                .collect::<Vec<_>>(),
            false,
        );
        for row in &rows {
            out.push('\n');
            out += &line(row, true);
        }
        out
    }
}

pub fn opt(s: &Option<impl ToString>) -> String {
    s.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn time(ms: i64) -> String {
    crate::util::format_time(ms)
}

/// `ms` (epoch milliseconds) as a person reads it, relative to now: `4m ago`, `in 2h`,
/// `just now`. Tables use it; `--json` keeps the exact stamp.
pub fn ago(ms: i64) -> String {
    relative(ms, crate::util::now_ms())
}

/// [`ago`] against a given `now`, for tests.
pub fn relative(ms: i64, now: i64) -> String {
    let d = now.saturating_sub(ms);
    if d.abs() < 1000 {
        return "just now".into();
    }
    if d > 0 {
        format!("{} ago", crate::util::format_span(d))
    } else {
        format!("in {}", crate::util::format_span(d.saturating_neg()))
    }
}

/// A colour for a word a person should notice. Printed only on a terminal, and never with
/// `NO_COLOR` set (https://no-color.org).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Red,
    Green,
    Yellow,
    Dim,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Red => "31",
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Dim => "2",
        }
    }
}

/// Whether stdout takes colour: a terminal, and `NO_COLOR` unset or empty.
pub fn colour_on() -> bool {
    use std::io::IsTerminal;
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
    })
}

/// `s` in colour `c` when stdout takes colour (see [`colour_on`]), else `s` as it is.
/// Give it text that is already safe to print (ours, or passed through [`safe_line`]).
pub fn paint(s: &str, c: Colour) -> String {
    paint_if(colour_on(), s, c)
}

fn paint_if(on: bool, s: &str, c: Colour) -> String {
    if on && !s.is_empty() {
        format!("\x1b[{}m{s}\x1b[0m", c.code())
    } else {
        s.to_string()
    }
}

/// The colour of an agent or bead state in a table: red for what needs a person, yellow
/// for what is in passage, green for work going on.
pub fn state_colour(state: &str) -> Option<Colour> {
    match state {
        "running" | "in_progress" | "done" | "merged" => Some(Colour::Green),
        "spawning" | "finishing" | "hooked" | "queued" => Some(Colour::Yellow),
        "dead" | "failed" | "escalated" | "nuked" | "conflict" | "rejected" => Some(Colour::Red),
        "idle" | "cancelled" | "deferred" => Some(Colour::Dim),
        _ => None,
    }
}

/// `ms` (epoch milliseconds) as the local time of day, `21:04:05` (as UTC when the
/// local zone cannot be read).
pub fn clock(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value to be overwritten.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r keeps no reference.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return crate::util::format_time(ms)
            .get(11..19)
            .unwrap_or("??:??:??")
            .to_string();
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// A past moment as when and how long ago: `21:04:05 (15s ago)` within a day, else
/// `2026-11-24T08:00:00Z (3d ago)`.
pub fn since(ms: i64) -> String {
    let now = crate::util::now_ms();
    let when = if (now - ms).abs() < 86_400_000 {
        clock(ms)
    } else {
        time(ms)
    };
    format!("{when} ({})", relative(ms, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "a\x1b]0;pwned\x07b\x1b[2Jc\rd\u{9b}31me\u{202e}f\u{2066}g\x7fh\0i";

    #[test]
    fn safe_shows_every_control_and_bidi_character_as_an_escape() {
        assert_eq!(
            safe(HOSTILE),
            "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\rd\\u{9b}31me\\u{202e}f\\u{2066}g\\x7fh\\x00i"
        );
        for c in [
            '\u{80}', '\u{9f}', '\u{202a}', '\u{202d}', '\u{2069}', '\x01',
        ] {
            let s = c.to_string();
            assert!(!safe(&s).contains(c), "{c:?} passed through");
        }
        // Multi-line text keeps its lines and tabs; one-line text does not.
        assert_eq!(safe("one\n\ttwo"), "one\n\ttwo");
        assert_eq!(safe_line("one\n\ttwo\r"), "one\\n\\ttwo\\r");
        assert_eq!(safe_line(HOSTILE), safe(HOSTILE));
    }

    #[test]
    fn safe_leaves_ordinary_text_alone_and_borrowed() {
        for s in [
            "",
            "plain",
            "ééé 日本語 → ✓",
            "C:\\path\\x1b",
            "emoji 🦀",
            "\u{a0}nbsp",
        ] {
            assert!(matches!(safe(s), Cow::Borrowed(_)), "{s:?}");
            assert!(matches!(safe_line(s), Cow::Borrowed(_)), "{s:?}");
            assert_eq!(safe(s), s);
        }
    }

    #[test]
    fn short_counts_characters_and_never_splits_one() {
        assert_eq!(short("0123456789abcdef", 12), "0123456789ab");
        assert_eq!(short("abc", 12), "abc");
        assert_eq!(short("", 12), "");
        assert_eq!(short("ééééééééééééé", 12), "éééééééééééé");
        assert_eq!(short("日本語🦀x", 4), "日本語🦀");
        assert_eq!(short("abc", 0), "");
        // Every prefix length of mixed-width text is a valid cut.
        let s = "aé日🦀\u{9b}b";
        for n in 0..10 {
            let p = short(s, n);
            assert!(s.starts_with(p));
            assert_eq!(p.chars().count(), n.min(s.chars().count()));
        }
    }

    #[test]
    fn a_table_escapes_its_cells_and_pads_by_characters() {
        let mut t = Table::new(&["id", "subject"]);
        t.row(vec!["é1".into(), "a\x1b[2J\r\nb".into()]);
        t.row(vec!["\u{202e}x".into(), "ok".into()]);
        t.row(vec!["abcdef".into(), "ok".into()]);
        let out = t.render();
        assert_eq!(
            out,
            "ID         SUBJECT\n\
             é1         a\\x1b[2J\\r\\nb\n\
             \\u{202e}x  ok\n\
             abcdef     ok"
        );
        assert!(!out.contains('\x1b') && !out.contains('\r') && !out.contains('\u{202e}'));
    }

    #[test]
    fn relative_times_read_as_a_person_says_them() {
        let now = 1_000_000_000;
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - 400, now), "just now");
        assert_eq!(relative(now - 4 * 60_000, now), "4m ago");
        assert_eq!(relative(now - 3 * 3_600_000 - 5, now), "3h ago");
        assert_eq!(relative(now + 2 * 3_600_000, now), "in 2h");
        assert_eq!(relative(now - 45_000, now), "45s ago");
        assert_eq!(relative(now - 3 * 86_400_000, now), "3d ago");
    }

    #[test]
    fn coloured_cells_keep_the_columns_aligned_and_plain_output_has_no_escapes() {
        let mut t = Table::new(&["state", "bead"]);
        t.colour(0, state_colour);
        t.row(vec!["running".into(), "a".into()]);
        t.row(vec!["dead".into(), "b".into()]);
        let plain = t.render_with(false);
        assert!(!plain.contains('\x1b'), "{plain}");
        let painted = t.render_with(true);
        assert!(painted.contains("\x1b[32mrunning\x1b[0m  a"), "{painted:?}");
        assert!(painted.contains("\x1b[31mdead\x1b[0m     b"), "{painted:?}");
        // Without the codes, the same table.
        let stripped = painted
            .replace("\x1b[32m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
    }
}
