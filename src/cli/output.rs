//! Rendering: aligned tables for people, stable JSON for programs.

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;

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

/// A table with a header row; columns are padded to their widest cell.
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
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
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
        for row in &self.rows {
            out.push('\n');
            out += &line(row);
        }
        println_out(&out)
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
