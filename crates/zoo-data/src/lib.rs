//! Training data files: the formats the zoo's models were trained on, read as a stream of
//! records (memory does not grow with the file), each checked, and counted.
//!
//! Formats (detected from the first record, or named):
//! - `conversations`: LLM Zoo / Phoenix and ShareGPT, a JSON array (or JSON lines) of
//!   `{"id"?, "conversations": [{"from": "human"|"gpt"|..., "value": "..."}]}`;
//! - `alpaca`: `{"instruction", "input"?, "output"}`;
//! - `openai`: OpenAI chat JSON lines, `{"messages": [{"role", "content"}]}`;
//! - `apollo`: ApolloCorpus, a JSON array of texts (pre-training) or of `[q, a, q, a, ...]`
//!   lists (QA).
//!
//! Status: `validate`, `stats` and `convert` (issue #19); sample, split, dedup and render are to come.

mod convert;
mod read;
mod validate;

pub use convert::{ConvertReport, convert, to_value};
pub use read::{Format, Record, Turn, read_records};
pub use validate::{Problem, Stats, check_record};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file stops being JSON: at this record, line and column.
    #[error("{path}: record {record}: not valid JSON at line {line}, column {column}: {message}")]
    Json { path: PathBuf, record: usize, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

pub type Result<T> = std::result::Result<T, DataError>;
