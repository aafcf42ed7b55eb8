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
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};

use crate::read::{Format, Turn, Watch, read_records_until};
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

/// Records streamed to a file written atomically (`zoo data convert|sample|split|dedup`): JSON
/// lines for a `.jsonl` name, else a JSON array. Nothing is at the path until
/// [`commit`](Self::commit); dropped before, it leaves nothing there.
pub(crate) struct RecordWriter {
    path: PathBuf,
    lines: bool,
    written: usize,
    w: BufWriter<zoo_atomic_write::AtomicFile>,
}

impl RecordWriter {
    pub(crate) fn create(path: &Path) -> Result<RecordWriter> {
        let file = zoo_atomic_write::AtomicFile::create(path).map_err(|e| atomic_error(path, e))?;
        let lines = path.extension().is_some_and(|e| e == "jsonl");
        let mut w =
            RecordWriter { path: path.to_path_buf(), lines, written: 0, w: BufWriter::with_capacity(1 << 16, file) };
        if !lines {
            w.w.write_all(b"[").map_err(|e| w.io(e))?;
        }
        Ok(w)
    }

    fn io(&self, e: std::io::Error) -> DataError {
        DataError::Io { path: self.path.clone(), source: e }
    }

    pub(crate) fn write(&mut self, v: &Value) -> Result<()> {
        let sep: &[u8] = match (self.lines, self.written) {
            (true, _) => b"",
            (false, 0) => b"\n",
            (false, _) => b",\n",
        };
        let r =
            self.w.write_all(sep).and_then(|_| serde_json::to_writer(&mut self.w, v).map_err(std::io::Error::other));
        r.and_then(|_| if self.lines { self.w.write_all(b"\n") } else { Ok(()) }).map_err(|e| self.io(e))?;
        self.written += 1;
        Ok(())
    }

    /// Ends the file and flushes it; what is left to do is to commit it (fsync, rename), which
    /// [`split`](crate::split) does for all its files at once.
    pub(crate) fn finish(mut self) -> Result<(zoo_atomic_write::AtomicFile, usize)> {
        if !self.lines {
            self.w.write_all(b"\n]\n").map_err(|e| self.io(e))?;
        }
        let RecordWriter { path, written, w, .. } = self;
        let file = w.into_inner().map_err(|e| DataError::Io { path, source: e.into_error() })?;
        Ok((file, written))
    }

    /// Finishes the file and puts it in place; the number of records written.
    pub(crate) fn commit(self) -> Result<usize> {
        let path = self.path.clone();
        let (file, written) = self.finish()?;
        file.commit().map_err(|e| atomic_error(&path, e))?;
        Ok(written)
    }
}

pub(crate) fn atomic_error(path: &Path, e: zoo_atomic_write::Error) -> DataError {
    DataError::Format { path: path.to_path_buf(), message: e.to_string() }
}

/// Converts `input` (format `from`, else detected) to `to`, writing `output`.
pub fn convert(
    input: &Path,
    from: Option<Format>,
    to: Format,
    output: &Path,
    skip_invalid: bool,
    watch: Watch,
) -> Result<ConvertReport> {
    let mut w = RecordWriter::create(output)?;
    let mut skipped = 0usize;
    let mut failure: Option<DataError> = None;
    let (format, read) = read_records_until(input, from, watch, |fmt, rec| {
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
            Ok(v) => failure = w.write(&v).err(),
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
    let written = w.commit()?;
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
