//! Checks of one record (every problem with its JSON path) and the counts of a file.
//!
//! Decisions: roles are normalized as FastChat's ShareGPT cleaning reads them (`human`/`user` →
//! user; `gpt`/`assistant`/`chatgpt`/`bing`/`bard` → assistant; `system`); after an optional
//! system turn a conversation alternates user, assistant, starting with the user (the LLM Zoo
//! loss mask assumes it); an empty or white-space-only turn is a problem (it trains on nothing).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::read::{Format, Record, Turn};

/// One problem: the record (0-based), the JSON path in the file, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub record: usize,
    pub path: String,
    pub message: String,
}

/// A role as FastChat's ShareGPT cleaning reads it: `user`, `assistant`, `system`.
pub(crate) fn role_of(from: &str) -> Option<&'static str> {
    Some(match from {
        "human" | "user" => "user",
        "gpt" | "assistant" | "chatgpt" | "bing" | "bard" => "assistant",
        "system" => "system",
        _ => return None,
    })
}

/// The turns of a record and its problems (a record with problems may still have turns).
pub fn check_record(format: Format, rec: &Record) -> (Vec<Turn>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut turns = Vec::new();
    let base = format!("$[{}]", rec.index);
    let mut bad = |path: String, message: String| problems.push(Problem { record: rec.index, path, message });
    match format {
        Format::Conversations | Format::OpenAi => {
            let (key, role_key, text_key) = match format {
                Format::OpenAi => ("messages", "role", "content"),
                _ => ("conversations", "from", "value"),
            };
            match rec.value.get(key) {
                Some(Value::Array(list)) if list.is_empty() => bad(format!("{base}.{key}"), "no turns".into()),
                Some(Value::Array(list)) => {
                    for (k, t) in list.iter().enumerate() {
                        let path = format!("{base}.{key}[{k}]");
                        let from = t.get(role_key).and_then(Value::as_str);
                        let text = t.get(text_key).and_then(Value::as_str);
                        let role = match from {
                            None => {
                                bad(format!("{path}.{role_key}"), format!("missing `{role_key}` (a string)"));
                                continue;
                            }
                            Some(f) => match role_of(f) {
                                Some(r) => r,
                                None => {
                                    bad(format!("{path}.{role_key}"), format!("unknown role `{f}`"));
                                    continue;
                                }
                            },
                        };
                        match text {
                            None => bad(format!("{path}.{text_key}"), format!("missing `{text_key}` (a string)")),
                            Some(s) if s.trim().is_empty() => bad(format!("{path}.{text_key}"), "empty turn".into()),
                            Some(_) => {}
                        }
                        turns.push(Turn { role, text: text.unwrap_or_default().to_string() });
                    }
                    check_order(&turns, &base, key, &mut bad);
                }
                Some(_) => bad(format!("{base}.{key}"), format!("`{key}` is not a list")),
                None => bad(base.clone(), format!("no `{key}` (is this file in another format? see --format)")),
            }
        }
        Format::Alpaca => {
            let field = |k: &str| rec.value.get(k);
            for (k, required) in [("instruction", true), ("input", false), ("output", true)] {
                match field(k) {
                    Some(Value::String(s)) if required && s.trim().is_empty() => {
                        bad(format!("{base}.{k}"), "empty".into())
                    }
                    Some(Value::String(_)) => {}
                    None if !required => {}
                    None => bad(format!("{base}.{k}"), format!("missing `{k}`")),
                    Some(_) => bad(format!("{base}.{k}"), format!("`{k}` is not a string")),
                }
            }
            let s = |k: &str| field(k).and_then(Value::as_str).unwrap_or_default();
            let user = if s("input").is_empty() {
                s("instruction").to_string()
            } else {
                format!("{}\n\n{}", s("instruction"), s("input"))
            };
            turns.push(Turn { role: "user", text: user });
            turns.push(Turn { role: "assistant", text: s("output").to_string() });
        }
        Format::Apollo => match &rec.value {
            Value::String(s) if s.trim().is_empty() => bad(base.clone(), "empty text".into()),
            Value::String(s) => turns.push(Turn { role: "assistant", text: s.clone() }),
            Value::Array(items) => {
                if items.len() % 2 != 0 {
                    bad(base.clone(), format!("a QA list has an even number of texts, not {}", items.len()));
                }
                for (k, v) in items.iter().enumerate() {
                    match v.as_str() {
                        Some(t) if t.trim().is_empty() => bad(format!("{base}[{k}]"), "empty turn".into()),
                        Some(t) => turns
                            .push(Turn { role: if k % 2 == 0 { "user" } else { "assistant" }, text: t.to_string() }),
                        None => bad(format!("{base}[{k}]"), "not a string".into()),
                    }
                }
            }
            _ => bad(base.clone(), "an ApolloCorpus record is a text or a list of texts".into()),
        },
    }
    (turns, problems)
}

fn check_order(turns: &[Turn], base: &str, key: &str, bad: &mut impl FnMut(String, String)) {
    let start = usize::from(turns.first().is_some_and(|t| t.role == "system"));
    for (k, t) in turns.iter().enumerate().skip(start) {
        let want = if (k - start) % 2 == 0 { "user" } else { "assistant" };
        if t.role != want {
            bad(format!("{base}.{key}[{k}]"), format!("expected a {want} turn here, found {}", t.role));
            return;
        }
    }
    if turns.len() > start && turns.last().is_some_and(|t| t.role != "assistant") {
        bad(format!("{base}.{key}"), "the last turn is not the assistant's (nothing to learn from it)".into());
    }
}

/// The counts of a file (`zoo data stats`, and the summary of `zoo data validate`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub format: Option<Format>,
    pub records: usize,
    pub turns: usize,
    pub turns_by_role: BTreeMap<&'static str, usize>,
    /// Characters (Unicode scalar values) of all turns.
    pub chars: u64,
    pub max_record_chars: u64,
    /// Records by length in characters: `[upper bound, count]`, bounds 2^k (the last open).
    pub length_histogram: Vec<(u64, usize)>,
    pub records_with_problems: usize,
    pub problems: usize,
}

impl Stats {
    /// Adds another part's counts (the format is kept).
    pub fn merge(&mut self, o: &Stats) {
        self.records += o.records;
        self.turns += o.turns;
        for (k, n) in &o.turns_by_role {
            *self.turns_by_role.entry(k).or_default() += n;
        }
        self.chars += o.chars;
        self.max_record_chars = self.max_record_chars.max(o.max_record_chars);
        for &(bound, n) in &o.length_histogram {
            self.count_length(bound, n);
        }
        self.records_with_problems += o.records_with_problems;
        self.problems += o.problems;
    }

    fn count_length(&mut self, bound: u64, n: usize) {
        match self.length_histogram.iter_mut().find(|(b, _)| *b == bound) {
            Some((_, m)) => *m += n,
            None => {
                self.length_histogram.push((bound, n));
                self.length_histogram.sort_unstable();
            }
        }
    }

    pub fn add(&mut self, turns: &[Turn], problems: usize) {
        self.records += 1;
        self.turns += turns.len();
        let mut chars = 0u64;
        for t in turns {
            *self.turns_by_role.entry(t.role).or_default() += 1;
            chars += t.text.chars().count() as u64;
        }
        self.chars += chars;
        self.max_record_chars = self.max_record_chars.max(chars);
        self.count_length(chars.max(1).next_power_of_two(), 1);
        if problems > 0 {
            self.records_with_problems += 1;
            self.problems += problems;
        }
    }
}
