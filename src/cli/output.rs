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

/// `s` made safe to print on a terminal, keeping its line breaks and tabs: every other
/// C0 control (ESC, BEL, CR, …), DEL, the C1 controls (U+0080–U+009F) and the Unicode
/// bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) are shown as
/// escapes (`\x1b`, `\r`, `\u{9b}`, `\u{202e}`). A backslash is not escaped itself:
/// the output is for reading, `--json` is the exact form.
pub fn safe(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// [`safe`] for text that must stay on one line (a table cell, a field): line feeds and
/// tabs are escaped too (`\n`, `\t`).
pub fn safe_line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

fn needs_escape(c: char, multi_line: bool) -> bool {
    match c {
        '\n' | '\t' => !multi_line,
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
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

/// Print `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(value).map_err(|e| Error::Other(e.to_string()))?;
    println_out(&s)
}

/// Print a line to stdout; a closed pipe (`gt bead list | head`) is not an error.
pub fn println_out(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{s}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| Error::io("writing to stdout", e)),
    }
}

/// Write `bytes` to stdout exactly as they are (`gt peek --raw`); a closed pipe is not an
/// error.
pub fn print_raw(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.map_err(|e| Error::io("writing to stdout", e)),
    }
}

/// A table with a header row; columns are padded to their widest cell (counted in
/// characters). Every cell is printed through [`safe_line`]: no caller can let a control
/// character or a line break of a cell reach the terminal.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn print(&self) -> Result<()> {
        println_out(&self.render())
    }

    /// The table as text, without a trailing newline.
    pub fn render(&self) -> String {
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
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s += c;
                } else {
                    s += &format!("{c:<w$}  ", w = widths[i]);
                }
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
        );
        for row in &rows {
            out.push('\n');
            out += &line(row);
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
}
