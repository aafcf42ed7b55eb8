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
//! Operations: `scan` (validate and stats: problems, counts, languages, and token counts with a
//! tokenizer the caller gives), `convert`, `sample`, `split`, `dedup`, and `render` (LLM Zoo's
//! training text and loss mask, tokenized by the caller's encoder). No model code here: the
//! tokenizer comes from zoo-ops (`zoo_ops::chat::load_text`) through a closure.

mod convert;
mod pipeline;
mod read;
mod render;
mod reshape;
mod scan;
mod validate;

pub use convert::{ConvertReport, convert, to_value};
pub use read::{Format, Record, Turn, Watch, read_records, read_records_until};
pub use render::{LLMZOO_SYSTEM, RenderOptions, RenderReport, Rendered, render_conversation, render_file};
pub use reshape::{
    DUPLICATES_LISTED, DedupOptions, DedupReport, Duplicate, DuplicateKind, MAX_PERMS, SampleReport, SampleSize,
    SplitPart, SplitReport, dedup, lsh_params, sample, split,
};
pub use scan::{LanguageCount, ScanOptions, ScanReport, StatsReport, TokenCounter, TokenStats, TokenizedBy, scan};
pub use validate::{Problem, Stats, check_record};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file stops being JSON: at this record, line and column.
    #[error("{path}: record {record}: not valid JSON at line {line}, column {column}: {message}")]
    Json { path: PathBuf, record: usize, line: usize, column: usize, message: String, eof: bool },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// An option out of range: a sample size, split weights, a similarity threshold.
    #[error("{0}")]
    Argument(String),
    /// The caller's cancel token was set; nothing was written.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, DataError>;
