//! The plain-terminal voting screen of `zoo eval vote`: one key per vote when stdin is a
//! terminal (raw mode, restored on drop and on Ctrl-C, which quits), one line per vote when it
//! is a pipe (its first character counts); the two answers side by side when stdout is a wide
//! terminal, one above the other otherwise.

use std::io::{BufRead, IsTerminal, Write};

use unicode_width::UnicodeWidthChar;
use zoo_ops::vote::Ballot;
use zoo_report::wrap;

use crate::output::Style;

/// Key presses (`←`/`→` for the arrow keys), or first characters of lines.
pub struct Keys {
    raw: bool,
    lines: Option<std::io::StdinLock<'static>>,
}

impl Keys {
    pub fn new() -> Keys {
        let raw = std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok();
        Keys { raw, lines: (!raw).then(|| std::io::stdin().lock()) }
    }

    /// The next key; `None` at the end of input (or Ctrl-C / Ctrl-D in a terminal).
    pub fn next(&mut self) -> std::io::Result<Option<char>> {
        use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
        if self.raw {
            loop {
                if let Event::Key(k) = event::read()? {
                    if k.kind != KeyEventKind::Press {
                        continue;
                    }
                    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
                    return Ok(match k.code {
                        KeyCode::Char('c' | 'd') if ctrl => None,
                        KeyCode::Char(c) => Some(c),
                        KeyCode::Left => Some('←'),
                        KeyCode::Right => Some('→'),
                        KeyCode::Esc => Some('q'),
                        _ => continue,
                    });
                }
            }
        }
        let Some(lines) = self.lines.as_mut() else { return Ok(None) };
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            if let Some(c) = line.trim().chars().next() {
                return Ok(Some(c));
            }
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if self.raw {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// Shows one ballot: the question, then the left and right answers.
pub fn show_ballot(out: &mut dyn Write, style: Style, i: usize, n: usize, b: &Ballot) -> std::io::Result<()> {
    let cat = b.question.category.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
    writeln!(out)?;
    writeln!(out, "{}", style.bold(&format!("Question {i}/{n}{cat}")))?;
    for l in wrap(&b.question.text, 100) {
        writeln!(out, "{l}")?;
    }
    writeln!(out)?;
    let cols =
        if std::io::stdout().is_terminal() { crossterm::terminal::size().map(|s| s.0 as usize).ok() } else { None };
    match cols.filter(|&c| c >= 80) {
        Some(c) => {
            let half = (c - 3) / 2;
            let (l, r) = (wrap(&b.left, half), wrap(&b.right, half));
            writeln!(out, "{} │ {}", style.bold(&pad("1 (left)", half)), style.bold("2 (right)"))?;
            for k in 0..l.len().max(r.len()) {
                let (a, b) = (l.get(k).map_or("", String::as_str), r.get(k).map_or("", String::as_str));
                writeln!(out, "{} │ {b}", pad(a, half))?;
            }
        }
        None => {
            writeln!(out, "{}", style.bold("── Answer 1 (left) ──"))?;
            writeln!(out, "{}", b.left)?;
            writeln!(out, "{}", style.bold("── Answer 2 (right) ──"))?;
            writeln!(out, "{}", b.right)?;
        }
    }
    Ok(())
}
