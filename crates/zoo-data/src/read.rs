//! Streaming readers: a JSON array is read element by element (serde's sequence visitor), JSON
//! lines value by value; only one record is in memory at a time.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer as _, SeqAccess, Visitor};
use serde_json::Value;
use zoo_progress::{CancelToken, Event, Progress, Unit};

use crate::{DataError, Result};

/// A training data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// LLM Zoo / Phoenix and ShareGPT: `{"conversations": [{"from", "value"}]}`.
    Conversations,
    /// `{"instruction", "input"?, "output"}`.
    Alpaca,
    /// OpenAI chat: `{"messages": [{"role", "content"}]}`.
    OpenAi,
    /// ApolloCorpus: a text, or a `[q, a, q, a, ...]` list.
    Apollo,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["conversations", "sharegpt", "llmzoo", "alpaca", "openai", "apollo"];

    /// By name (`sharegpt` and `llmzoo` are `conversations`).
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name.to_ascii_lowercase().as_str() {
            "conversations" | "sharegpt" | "llmzoo" | "phoenix" => Format::Conversations,
            "alpaca" => Format::Alpaca,
            "openai" => Format::OpenAi,
            "apollo" | "apollocorpus" => Format::Apollo,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Conversations => "conversations",
            Format::Alpaca => "alpaca",
            Format::OpenAi => "openai",
            Format::Apollo => "apollo",
        }
    }

    /// The format a record is written in, from its keys (its shape for ApolloCorpus).
    pub fn detect(v: &Value) -> Option<Format> {
        match v {
            Value::Object(o) if o.contains_key("conversations") => Some(Format::Conversations),
            Value::Object(o) if o.contains_key("messages") => Some(Format::OpenAi),
            Value::Object(o) if o.contains_key("instruction") => Some(Format::Alpaca),
            Value::String(_) | Value::Array(_) => Some(Format::Apollo),
            _ => None,
        }
    }
}

/// One record as read: its index (0-based, the position in the array or the line's order)
/// and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub index: usize,
    pub value: Value,
}

/// One turn of a conversation, roles normalized to `system`, `user`, `assistant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub role: &'static str,
    pub text: String,
}

/// Reads every record of `path` in order, calling `each(format, record)`. The format is
/// `format`, else detected from the first record. Returns the format and the record count.
pub fn read_records(
    path: &Path,
    format: Option<Format>,
    each: impl FnMut(Format, Record),
) -> Result<(Option<Format>, usize)> {
    read_records_until(path, format, Watch::default(), each)
}

/// What a long read reports to and listens to: the bytes of the file read so far, as progress
/// events of the task `reading NAME`, and a cancel token.
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    pub progress: Option<&'a dyn Progress>,
    pub cancel: Option<&'a CancelToken>,
}

impl fmt::Debug for Watch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("progress", &self.progress.is_some())
            .field("cancelled", &self.cancel.map(CancelToken::is_cancelled))
            .finish()
    }
}

impl Watch<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(CancelToken::is_cancelled)
    }
}

/// The file under [`read_records_until`]: each read is reported, and fails once the token is
/// set, so reading stops within a buffer (1 MiB) of it.
struct Watched<'a> {
    file: std::fs::File,
    watch: Watch<'a>,
    task: &'a str,
}

impl std::io::Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.watch.cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        let n = std::io::Read::read(&mut self.file, buf)?;
        if let (Some(p), true) = (self.watch.progress, n > 0) {
            p.event(Event::Advance { task: self.task.to_string(), delta: n as u64 });
        }
        Ok(n)
    }
}

/// [`read_records`] with progress (bytes) and a cancel token: it stops with
/// [`DataError::Cancelled`] soon after the token is set.
pub fn read_records_until(
    path: &Path,
    format: Option<Format>,
    watch: Watch,
    mut each: impl FnMut(Format, Record),
) -> Result<(Option<Format>, usize)> {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let task = format!("reading {name}");
    let r = read_inner(path, format, watch, &task, &mut each);
    if let Some(p) = watch.progress {
        p.event(Event::Finish { task });
    }
    if watch.cancelled() {
        return Err(DataError::Cancelled);
    }
    r
}

fn read_inner(
    path: &Path,
    format: Option<Format>,
    watch: Watch,
    task: &str,
    mut each: impl FnMut(Format, Record),
) -> Result<(Option<Format>, usize)> {
    let io = |e| DataError::Io { path: path.to_path_buf(), source: e };
    let file = std::fs::File::open(path).map_err(io)?;
    if let Some(p) = watch.progress {
        let total = file.metadata().ok().map(|m| m.len());
        p.event(Event::Start { task: task.to_string(), total, unit: Unit::Bytes });
    }
    let mut reader = BufReader::with_capacity(1 << 20, Watched { file, watch, task });
    // The first byte that is not white space tells an array from JSON lines.
    let first = loop {
        let buf = reader.fill_buf().map_err(io)?;
        match buf.first() {
            None => break None,
            Some(b) if b.is_ascii_whitespace() => reader.consume(1),
            Some(&b) => break Some(b),
        }
    };
    let mut state = Sink { format, count: 0, each: &mut each, unknown: None };
    let json_err = |e: serde_json::Error, record: usize| DataError::Json {
        path: path.to_path_buf(),
        record,
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
        eof: e.is_eof(),
    };
    match first {
        None => {}
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_reader(reader);
            let r = (&mut de).deserialize_seq(Each(&mut state));
            r.map_err(|e| json_err(e, state.count))?;
            de.end().map_err(|e| json_err(e, state.count))?;
        }
        Some(_) => {
            for v in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
                let v = v.map_err(|e| json_err(e, state.count))?;
                state.push(v);
            }
        }
    }
    if let Some(i) = state.unknown {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            message: format!(
                "record {i} is in no known format (conversations, alpaca, openai, apollo); name one with --format"
            ),
        });
    }
    Ok((state.format, state.count))
}

struct Sink<'a, F: FnMut(Format, Record)> {
    format: Option<Format>,
    count: usize,
    each: &'a mut F,
    /// The first record whose format could not be told.
    unknown: Option<usize>,
}

impl<F: FnMut(Format, Record)> Sink<'_, F> {
    fn push(&mut self, value: Value) {
        let index = self.count;
        self.count += 1;
        if self.format.is_none() {
            self.format = Format::detect(&value);
        }
        match self.format {
            Some(f) => (self.each)(f, Record { index, value }),
            None => {
                self.unknown.get_or_insert(index);
            }
        }
    }
}

/// The array's elements, one at a time.
struct Each<'s, 'a, F: FnMut(Format, Record)>(&'s mut Sink<'a, F>);

impl<'de, F: FnMut(Format, Record)> Visitor<'de> for Each<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(v) = seq.next_element_seed(ValueSeed)? {
            self.0.push(v);
        }
        Ok(())
    }
}

struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}
