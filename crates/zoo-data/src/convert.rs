//! `zoo data convert`: records rewritten in another format, streamed to a file written
//! atomically (a temp file, fsync, rename: an interrupted or failed conversion leaves nothing
//! that looks complete).
//!
//! Decisions: every turn is kept or the record is refused (never silently cut): a record that
//! has problems, or that the target cannot hold (Alpaca holds one exchange and no system
//! text; an ApolloCorpus text is not a conversation), stops the conversion with its number, or
//! is skipped and counted with `skip_invalid`. Alpaca's `input` joins its instruction after a
//! blank line (as Alpaca's own prompt shows them), so Alpaca → other → Alpaca keeps the text,
//! not the split. A `.jsonl` output is JSON lines, anything else a JSON array.

use std::io::{BufWriter, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::read::{Format, Turn, read_records};
use crate::validate::check_record;
use crate::{DataError, Result};

#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    pub input: String,
    pub output: String,
    pub from: Option<Format>,
    pub to: Format,
    pub records_read: usize,
    pub records_written: usize,
    /// Records left out (`skip_invalid`): problems, or not expressible in the target.
    pub skipped: usize,
}

/// A record's turns in `to`'s shape, or why it cannot be.
pub fn to_value(turns: &[Turn], to: Format, id: Option<&Value>) -> std::result::Result<Value, String> {
    let has_system = turns.first().is_some_and(|t| t.role == "system");
    let starts_with_user = turns.iter().find(|t| t.role != "system").is_some_and(|t| t.role == "user");
    if to != Format::Apollo && !starts_with_user {
        return Err("a text, not a conversation (no user turn first)".into());
    }
    Ok(match to {
        Format::Conversations => {
            let from = |r: &str| match r {
                "user" => "human",
                "assistant" => "gpt",
                _ => "system",
            };
            let conv: Vec<Value> = turns.iter().map(|t| json!({"from": from(t.role), "value": t.text})).collect();
            match id {
                Some(id) => json!({"id": id, "conversations": conv}),
                None => json!({"conversations": conv}),
            }
        }
        Format::OpenAi => {
            json!({"messages": turns.iter().map(|t| json!({"role": t.role, "content": t.text})).collect::<Vec<_>>()})
        }
        Format::Alpaca => match turns {
            [u, a] if u.role == "user" && a.role == "assistant" => {
                json!({"instruction": u.text, "input": "", "output": a.text})
            }
            _ => {
                return Err(format!(
                    "{} turns do not fit Alpaca (one instruction, one output, no system text)",
                    turns.len()
                ));
            }
        },
        Format::Apollo => {
            if has_system {
                return Err("ApolloCorpus has no system text".into());
            }
            match turns {
                [t] if t.role == "assistant" => Value::String(t.text.clone()),
                _ => Value::Array(turns.iter().map(|t| Value::String(t.text.clone())).collect()),
            }
        }
    })
}

/// Converts `input` (format `from`, else detected) to `to`, writing `output`.
pub fn convert(
    input: &Path,
    from: Option<Format>,
    to: Format,
    output: &Path,
    skip_invalid: bool,
) -> Result<ConvertReport> {
    let io = |e: std::io::Error| DataError::Io { path: output.to_path_buf(), source: e };
    let atomic = |e: zoo_atomic_write::Error| DataError::Format { path: output.to_path_buf(), message: e.to_string() };
    let lines = output.extension().is_some_and(|e| e == "jsonl");
    let file = zoo_atomic_write::AtomicFile::create(output).map_err(atomic)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut written = 0usize;
    let mut skipped = 0usize;
    let mut failure: Option<DataError> = None;
    if !lines {
        w.write_all(b"[").map_err(io)?;
    }
    let (format, read) = read_records(input, from, |fmt, rec| {
        if failure.is_some() {
            return;
        }
        let (turns, problems) = check_record(fmt, &rec);
        let id = rec.value.get("id").filter(|v| v.is_string() || v.is_number());
        let value = match problems.first() {
            Some(p) => Err(format!("{}: {}", p.path, p.message)),
            None => to_value(&turns, to, id),
        };
        match value {
            Ok(v) => {
                let sep: &[u8] = match (lines, written) {
                    (true, _) => b"",
                    (false, 0) => b"\n",
                    (false, _) => b",\n",
                };
                let r = w.write_all(sep).and_then(|_| serde_json::to_writer(&mut w, &v).map_err(std::io::Error::other));
                let r = r.and_then(|_| if lines { w.write_all(b"\n") } else { Ok(()) });
                match r {
                    Ok(()) => written += 1,
                    Err(e) => failure = Some(io(e)),
                }
            }
            Err(_) if skip_invalid => skipped += 1,
            Err(why) => {
                failure = Some(DataError::Format {
                    path: input.to_path_buf(),
                    message: format!(
                        "record {} cannot be written as {}: {why} (--skip-invalid leaves such records out)",
                        rec.index,
                        to.name()
                    ),
                })
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if !lines {
        w.write_all(b"\n]\n").map_err(io)?;
    }
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.commit().map_err(atomic)?;
    Ok(ConvertReport {
        input: input.display().to_string(),
        output: output.display().to_string(),
        from: format,
        to,
        records_read: read,
        records_written: written,
        skipped,
    })
}
