//! Printing: aligned tables (width-aware for CJK text), CSV, Markdown, JSON, and color that
//! honours `--color`, `ZOO_COLOR` and `NO_COLOR`.

use std::io::{IsTerminal, Write};

use unicode_width::UnicodeWidthStr;

use zoo_ops::view::{Block, Doc, Table, Tone};

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
    pub fn tone(&self, tone: Tone, s: &str) -> String {
        match tone {
            Tone::Plain => s.to_string(),
            Tone::Strong => self.bold(s),
            Tone::Faint => self.dim(s),
            Tone::Good => self.green(s),
            Tone::Bad => self.red(s),
        }
    }
}

/// Writes a view: tones as ANSI styles, tables aligned.
pub fn print(w: &mut dyn Write, doc: &Doc, style: Style) -> std::io::Result<()> {
    for b in &doc.blocks {
        match b {
            Block::Line(spans) => {
                let line: String = spans.iter().map(|s| style.tone(s.tone, &s.text)).collect();
                writeln!(w, "{line}")?;
            }
            Block::Table(t) => write_text(t, w, style)?,
        }
    }
    Ok(())
}

/// The report as pretty JSON with `--json`, else its view.
pub fn report<T: serde::Serialize>(
    w: &mut dyn Write,
    style: Style,
    json: bool,
    r: &T,
    view: impl FnOnce(&T) -> Doc,
) -> anyhow::Result<()> {
    if json { write_json(w, r) } else { Ok(print(w, &view(r), style)?) }
}

/// A table as the only block of a view.
pub fn table(t: Table) -> Doc {
    let mut d = Doc::new();
    d.table(t);
    d
}

/// Aligned plain-text table (by display width, so CJK text lines up); the last column is not
/// padded.
pub fn write_text(t: &Table, w: &mut dyn Write, style: Style) -> std::io::Result<()> {
    let n = t.header.len();
    let mut widths: Vec<usize> = t.header.iter().map(|h| h.width()).collect();
    for r in &t.rows {
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
            if t.right[i] {
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
    writeln!(w, "{}", line(&t.header, true))?;
    for r in &t.rows {
        writeln!(w, "{}", line(r, false))?;
    }
    Ok(())
}

/// RFC 4180 CSV (the `csv` crate's quoting: a field is quoted when it holds a comma, a quote
/// or a line break, or is a record's only field and empty), lines ending in `\n`.
pub fn write_csv(t: &Table, w: &mut dyn Write) -> std::io::Result<()> {
    let mut out = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(w);
    out.write_record(&t.header)?;
    for r in &t.rows {
        out.write_record(r)?;
    }
    out.flush()
}

/// GitHub-flavoured Markdown table.
pub fn write_markdown(t: &Table, w: &mut dyn Write) -> std::io::Result<()> {
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    writeln!(w, "| {} |", t.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "))?;
    let seps: Vec<&str> = t.right.iter().map(|r| if *r { "---:" } else { "---" }).collect();
    writeln!(w, "|{}|", seps.join("|"))?;
    for r in &t.rows {
        writeln!(w, "| {} |", r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | "))?;
    }
    Ok(())
}

/// Pretty JSON followed by a newline.
pub fn write_json<T: serde::Serialize>(w: &mut dyn Write, v: &T) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *w, v)?;
    writeln!(w)?;
    Ok(())
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
        write_text(&t, &mut out, Style { color: false }).unwrap();
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1].width(), lines[2].width(), "{s}");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(["a"]);
        t.push(vec!["x, \"y\"".into()]);
        let mut out = Vec::new();
        write_csv(&t, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\n\"x, \"\"y\"\"\"\n");

        let mut t = Table::new(["name", "note"]);
        t.push(vec!["plain".into(), "two\nlines".into()]);
        t.push(vec!["".into(), "cr\rhere".into()]);
        t.push(vec!["华佗".into(), "".into()]);
        let mut out = Vec::new();
        write_csv(&t, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name,note\nplain,\"two\nlines\"\n,\"cr\rhere\"\n华佗,\n");
    }
}
