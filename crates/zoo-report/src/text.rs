//! Text helpers shared by the renderers: number formatting, escaping, truncation and ids.

use std::collections::HashSet;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Shown for a missing, NaN or infinite value.
pub const MISSING: &str = "–";

/// A percent with 2 decimals, or [`MISSING`].
pub fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            let s = format!("{v:.2}");
            // -0.001 rounds to "-0.00"; a sign on zero only confuses readers.
            if s == "-0.00" { "0.00".to_string() } else { s }
        }
        _ => MISSING.to_string(),
    }
}

/// One line of text: control characters (newlines included) become spaces, since every place
/// text goes (table cells, chart labels, attributes) is one line, and NUL or escape bytes are
/// invalid in XML.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for a Markdown table cell: the characters that would end the cell, start
/// markup or inline HTML are backslash-escaped (CommonMark allows that for any ASCII punctuation).
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).trim().chars() {
        if matches!(c, '\\' | '|' | '`' | '*' | '_' | '<' | '>' | '[' | ']' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Display width in terminal columns (CJK counts 2), which approximates width in a proportional
/// font well enough to keep labels inside their box.
pub fn width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

/// Cuts `s` to at most `max` columns, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    let s = one_line(s);
    if width(&s) <= max {
        return s;
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > max {
            break;
        }
        w += cw;
        out.push(c);
    }
    out.push('…');
    out
}

/// A file- and id-safe name: lowercase ASCII letters, digits and single `-`, at most 48 chars,
/// `section` when nothing is left.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() { "section".to_string() } else { out.to_string() }
}

/// Hands out unique ids: a second `x` becomes `x-2`, and so on.
#[derive(Debug, Default)]
pub struct UniqueIds(HashSet<String>);

impl UniqueIds {
    pub fn make(&mut self, base: &str) -> String {
        let mut id = base.to_string();
        let mut n = 2u64;
        while self.0.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        self.0.insert(id.clone());
        id
    }
}

/// Wraps `text` to `width` display columns, breaking at spaces where it can and inside a word
/// only when it is wider than a line (CJK text, which has no spaces, anywhere); the TUI's panes
/// and the plain-terminal voting screen lay text out with it.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0;
        for word in para.split_inclusive(' ') {
            let ww = word.width();
            if w + ww > width && w > 0 && ww <= width {
                out.push(std::mem::take(&mut line).trim_end().to_string());
                w = 0;
            }
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if w + cw > width {
                    out.push(std::mem::take(&mut line));
                    w = 0;
                }
                line.push(c);
                w += cw;
            }
        }
        out.push(line.trim_end().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_spaces_and_inside_wide_text() {
        assert_eq!(wrap("aaa bbb ccc", 8), vec!["aaa bbb", "ccc"]);
        // Chinese is two columns a character and has no spaces.
        assert_eq!(wrap("华佗华佗华佗", 8), vec!["华佗华佗", "华佗"]);
        assert_eq!(wrap("a\n\nb", 8), vec!["a", "", "b"]);
        // A word wider than the line is cut; a narrow one moves to the next line whole.
        assert_eq!(wrap("abcdefghij xy", 4), vec!["abcd", "efgh", "ij", "xy"]);
    }

    #[test]
    fn numbers_have_two_decimals_and_missing_is_a_dash() {
        assert_eq!(num(Some(62.456)), "62.46");
        assert_eq!(num(Some(0.0)), "0.00");
        assert_eq!(num(Some(-0.001)), "0.00");
        assert_eq!(num(Some(f64::NAN)), "–");
        assert_eq!(num(Some(f64::INFINITY)), "–");
        assert_eq!(num(None), "–");
    }

    #[test]
    fn escaping() {
        assert_eq!(html("<b>&\"x'\n"), "&lt;b&gt;&amp;&quot;x&#39; ");
        assert_eq!(markdown("a|b_c <d>"), "a\\|b\\_c \\<d\\>");
    }

    #[test]
    fn truncation_counts_wide_characters() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdefghij", 5), "abcd…");
        assert_eq!(truncate("华佗GPT模型", 5), "华佗…");
        assert_eq!(truncate("abc", 0), "…");
    }

    #[test]
    fn slugs_and_unique_ids() {
        assert_eq!(
            slug("llmzoo-order (judge: gpt-4o, reference: chatgpt)"),
            "llmzoo-order-judge-gpt-4o-reference-chatgpt"
        );
        assert_eq!(slug("华佗"), "section");
        assert_eq!(slug("--A  B--"), "a-b");
        let mut ids = UniqueIds::default();
        assert_eq!(ids.make("x"), "x");
        assert_eq!(ids.make("x"), "x-2");
        assert_eq!(ids.make("x"), "x-3");
    }
}
