//! `zoo data render`: the exact training text and loss mask of LLM Zoo's supervised training
//! (`llmzoo/datasets/datasets.py`), as token ids and labels, for people who train elsewhere.
//!
//! The rule, as LLM Zoo wrote it:
//! - text: the system string, then for each turn `Role: <s>text</s>` with no separator, `Role`
//!   `Human` for `from` = `human`, `Assistant` for `gpt` (either case), `unknown` for any other;
//! - ids: the tokenizer on the whole text with its own special tokens (LLaMA's BOS; BLOOM adds
//!   none), cut at `max_length` tokens (`model_max_length`, 2048 in the training scripts);
//! - labels: a copy of the ids with −100 everywhere except, for each `gpt` turn, the positions
//!   `len(tok(prefix + "Assistant: <s>")) − 1 .. len(tok(prefix + "Assistant: <s>" + text + "</s>"))`,
//!   each prefix tokenized on its own and cut at `max_length` the same way. So a span starts at
//!   the header's last token and ends with `</s>`; a turn that starts after the cut marks the
//!   last position (the cut prefix has `max_length` tokens), as LLM Zoo's code does;
//! - records with no turns are left out (LLM Zoo drops them when it loads the file).
//!
//! Decisions: other formats are read as conversations first (user → `human`, assistant →
//! `gpt`, system → a turn with role `system`, rendered `unknown` as LLM Zoo renders any other
//! role); `normalize_roles` maps ShareGPT's other assistant names (`chatgpt`, `bing`, `bard`,
//! `assistant`) and `user` first, which LLM Zoo itself did not. A record whose turns lack a
//! string `from` or `value` is refused with its number (LLM Zoo fails on it). Output is JSON
//! lines (a JSON array for a name not ending `.jsonl`), written atomically; records keep
//! their order.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::convert::RecordWriter;
use crate::pipeline::map_chunks;
use crate::read::{Format, Record, Watch};
use crate::validate::{check_record, role_of};
use crate::{DataError, Result};

/// LLM Zoo's system string (it ends with two newlines).
pub const LLMZOO_SYSTEM: &str = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n\n";

/// Token ids of a text with the tokenizer's own special tokens, cut at the maximum length.
pub type Encoder<'a> = &'a (dyn Fn(&str) -> std::result::Result<Vec<u32>, String> + Sync);

/// One record rendered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendered {
    pub record: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub input_ids: Vec<u32>,
    pub labels: Vec<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RenderReport {
    pub input: String,
    pub output: String,
    pub records_read: usize,
    pub records_written: usize,
    /// Records with no turns, left out as LLM Zoo leaves them out.
    pub empty: usize,
    pub tokens: u64,
    /// Tokens with a label (not −100).
    pub trained_tokens: u64,
    /// Records whose text was cut at the maximum length.
    pub cut: usize,
}

/// `(from, value)` turns of a record as LLM Zoo reads them, or a problem with its JSON path.
fn turns_of(format: Format, rec: &Record, normalize: bool) -> std::result::Result<Vec<(String, String)>, String> {
    let base = format!("$[{}]", rec.index);
    let mut turns = Vec::new();
    if format == Format::Conversations {
        let list = match rec.value.get("conversations") {
            Some(Value::Array(l)) => l,
            _ => return Err(format!("{base}.conversations: not a list")),
        };
        for (k, t) in list.iter().enumerate() {
            let s = |key: &str| {
                t.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| format!("{base}.conversations[{k}].{key}: missing or not a string"))
            };
            turns.push((s("from")?, s("value")?));
        }
    } else {
        let (read, problems) = check_record(format, rec);
        if read.is_empty()
            && let Some(p) = problems.first()
        {
            return Err(format!("{}: {}", p.path, p.message));
        }
        for t in read {
            let from = match t.role {
                "user" => "human",
                "assistant" => "gpt",
                other => other,
            };
            turns.push((from.to_string(), t.text));
        }
    }
    if normalize {
        for (from, _) in &mut turns {
            match role_of(&from.to_lowercase()) {
                Some("user") => *from = "human".to_string(),
                Some("assistant") => *from = "gpt".to_string(),
                _ => {}
            }
        }
    }
    Ok(turns)
}

/// The training text, ids and labels of one conversation (`(from, value)` turns); `encode`
/// cuts at `max_length` tokens.
///
/// Every span boundary tokenizes the text up to it, as LLM Zoo does. Those texts end with the
/// special token `<s>` or `</s>`, at which the tokenizer splits, so a longer one has at least
/// the tokens of a shorter one: once a boundary reaches the cut, every later one is at the cut
/// too, and is not tokenized again (the same spans, without the quadratic cost past the cut).
pub fn render_conversation(
    turns: &[(String, String)],
    encode: Encoder,
    max_length: usize,
) -> std::result::Result<(String, Vec<u32>, Vec<i64>), String> {
    let mut text = LLMZOO_SYSTEM.to_string();
    let mut spans = Vec::new();
    let mut at_cut = false;
    for (from, value) in turns {
        let role = match from.to_lowercase().as_str() {
            "human" => "Human",
            "gpt" => "Assistant",
            _ => "unknown",
        };
        let turn = format!("{role}: <s>{value}</s>");
        if from.to_lowercase() == "gpt" {
            let start = if at_cut { max_length } else { encode(&format!("{text}{role}: <s>"))?.len() };
            let end = if at_cut || start >= max_length { max_length } else { encode(&format!("{text}{turn}"))?.len() };
            at_cut = end >= max_length;
            spans.push((start.saturating_sub(1), end));
        }
        text.push_str(&turn);
    }
    let ids = encode(&text)?;
    let mut labels = vec![-100i64; ids.len()];
    for (start, end) in spans {
        for k in start..end.min(ids.len()) {
            labels[k] = i64::from(ids[k]);
        }
    }
    Ok((text, ids, labels))
}

/// What a worker made of one record: rendered, left out (no turns), or refused (why).
type Outcome = std::result::Result<Option<Rendered>, String>;

fn render_record(fmt: Format, rec: &Record, encode: Encoder, o: &RenderOptions) -> Outcome {
    let (max_length, with_text) = (o.max_length, o.with_text);
    let turns = turns_of(fmt, rec, o.normalize_roles).map_err(|m| format!("record {}: {m}", rec.index))?;
    if turns.is_empty() {
        return Ok(None);
    }
    let (text, input_ids, labels) = render_conversation(&turns, encode, max_length)
        .map_err(|m| format!("record {}: tokenizing: {m}", rec.index))?;
    Ok(Some(Rendered {
        record: rec.index,
        id: rec.value.get("id").cloned(),
        text: with_text.then_some(text),
        input_ids,
        labels,
    }))
}

const CHUNK: usize = 16;

/// How `render_file` renders.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions<'a> {
    /// Where `encode` cuts (it does the cutting; this tells where).
    pub max_length: usize,
    pub with_text: bool,
    pub normalize_roles: bool,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Progress (the file's bytes) and cancellation: [`DataError::Cancelled`] soon after the
    /// token is set, and nothing written.
    pub watch: Watch<'a>,
}

/// Renders every record of `input` to `out`, atomically, in record order, on `threads` workers
/// (`pipeline.rs`: memory does not grow with the file).
pub fn render_file(
    input: &Path,
    format: Option<Format>,
    encode: Encoder,
    o: RenderOptions,
    out: &Path,
) -> Result<RenderReport> {
    let mut w = RecordWriter::create(out)?;
    let mut report = RenderReport {
        input: input.display().to_string(),
        output: out.display().to_string(),
        records_read: 0,
        records_written: 0,
        empty: 0,
        tokens: 0,
        trained_tokens: 0,
        cut: 0,
    };
    let bad = |message: String| DataError::Format { path: input.to_path_buf(), message };
    let mut failed = None;
    let work = |fmt: Format, records: &[Record]| -> Vec<Outcome> {
        records.iter().map(|r| render_record(fmt, r, encode, &o)).collect()
    };
    let (read, _) = map_chunks(input, format, (o.threads, CHUNK), o.watch, work, |outcomes| {
        for outcome in outcomes {
            let r = match outcome {
                Ok(Some(r)) => r,
                Ok(None) => {
                    report.empty += 1;
                    continue;
                }
                Err(m) => {
                    failed = Some(bad(m));
                    return false;
                }
            };
            report.tokens += r.input_ids.len() as u64;
            report.trained_tokens += r.labels.iter().filter(|&&l| l != -100).count() as u64;
            report.cut += usize::from(r.input_ids.len() >= o.max_length);
            let v = serde_json::to_value(&r).map_err(|e| bad(e.to_string()));
            if let Err(e) = v.and_then(|v| w.write(&v)) {
                failed = Some(e);
                return false;
            }
            report.records_written += 1;
        }
        true
    });
    if let Some(e) = failed {
        return Err(e);
    }
    report.records_read = read?.1;
    w.commit()?;
    Ok(report)
}
