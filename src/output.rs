//! Printing: aligned tables (width-aware for CJK text), CSV, Markdown, JSON, and color that
//! honours `--color`, `ZOO_COLOR` and `NO_COLOR`.

use std::io::{IsTerminal, Write};

use unicode_width::UnicodeWidthStr;

use crate::cli::ColorChoice;

/// Decide once whether stdout gets ANSI color.
pub fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
        }
    }
}

/// Styling for one run of the program.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn bold(&self, s: &str) -> String {
        if self.color { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() }
    }
    pub fn dim(&self, s: &str) -> String {
        if self.color { format!("\x1b[2m{s}\x1b[0m") } else { s.to_string() }
    }
    pub fn green(&self, s: &str) -> String {
        if self.color { format!("\x1b[32m{s}\x1b[0m") } else { s.to_string() }
    }
    pub fn red(&self, s: &str) -> String {
        if self.color { format!("\x1b[31m{s}\x1b[0m") } else { s.to_string() }
    }
}

/// A table of strings with a header row.
#[derive(Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns to right-align (numbers).
    pub right: Vec<bool>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        let right = vec![false; header.len()];
        Table { header, rows: Vec::new(), right }
    }

    pub fn right_align(mut self, cols: &[usize]) -> Self {
        for &c in cols {
            if c < self.right.len() {
                self.right[c] = true;
            }
        }
        self
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Aligned plain-text table; the last column is not padded.
    pub fn write_text(&self, w: &mut dyn Write, style: Style) -> std::io::Result<()> {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.width()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.width());
            }
        }
        let line = |cells: &[String], bold: bool| -> String {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                let pad = widths[i].saturating_sub(c.width());
                let last = i + 1 == n;
                let cell = if bold { style.bold(c) } else { c.clone() };
                if self.right[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(&cell);
                } else {
                    s.push_str(&cell);
                    if !last {
                        s.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        writeln!(w, "{}", line(&self.header, true))?;
        for r in &self.rows {
            writeln!(w, "{}", line(r, false))?;
        }
        Ok(())
    }

    /// RFC 4180 CSV (the `csv` crate's quoting: a field is quoted when it holds a comma, a
    /// quote or a line break, or is a record's only field and empty), lines ending in `\n`.
    pub fn write_csv(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let mut out = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(w);
        out.write_record(&self.header)?;
        for r in &self.rows {
            out.write_record(r)?;
        }
        out.flush()
    }

    /// GitHub-flavoured Markdown table.
    pub fn write_markdown(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        writeln!(w, "| {} |", self.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "))?;
        let seps: Vec<&str> = self.right.iter().map(|r| if *r { "---:" } else { "---" }).collect();
        writeln!(w, "|{}|", seps.join("|"))?;
        for r in &self.rows {
            writeln!(w, "| {} |", r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | "))?;
        }
        Ok(())
    }
}

/// Pretty JSON followed by a newline.
pub fn write_json<T: serde::Serialize>(w: &mut dyn Write, v: &T) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *w, v)?;
    writeln!(w)?;
    Ok(())
}

/// A number without trailing zeros noise: 7.0 → "7", 0.5 → "0.5", 56.00 → "56.00" kept as 2 dp.
pub fn fmt_params(b: Option<f64>) -> String {
    match b {
        None => "-".into(),
        Some(v) if v >= 1.0 => format!("{}B", trim(format!("{v:.2}"))),
        Some(v) => format!("{}M", trim(format!("{:.0}", v * 1000.0))),
    }
}

pub fn fmt_score(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn trim(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_cells_align_by_display_width() {
        let mut t = Table::new(["A", "B"]);
        t.push(vec!["华佗".into(), "x".into()]);
        t.push(vec!["abcd".into(), "y".into()]);
        let mut out = Vec::new();
        t.write_text(&mut out, Style { color: false }).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1].width(), lines[2].width(), "{s}");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(["a"]);
        t.push(vec!["x, \"y\"".into()]);
        let mut out = Vec::new();
        t.write_csv(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\n\"x, \"\"y\"\"\"\n");

        let mut t = Table::new(["name", "note"]);
        t.push(vec!["plain".into(), "two\nlines".into()]);
        t.push(vec!["".into(), "cr\rhere".into()]);
        t.push(vec!["华佗".into(), "".into()]);
        let mut out = Vec::new();
        t.write_csv(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name,note\nplain,\"two\nlines\"\n,\"cr\rhere\"\n华佗,\n");
    }

    #[test]
    fn params_are_compact() {
        assert_eq!(fmt_params(Some(7.0)), "7B");
        assert_eq!(fmt_params(Some(7.07)), "7.07B");
        assert_eq!(fmt_params(Some(0.135)), "135M");
        assert_eq!(fmt_params(None), "-");
    }
}
