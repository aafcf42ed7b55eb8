//! The one error type of the runner: every variant names the file, tensor or setting at fault.

use std::path::PathBuf;

pub type Result<T, E = InferError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },

    #[error("architecture {name:?} is not supported by the runner; supported: {supported}")]
    UnsupportedArch { name: String, supported: String },

    #[error("{path}: tensor {name:?} is missing (expected for {arch})")]
    MissingTensor { path: PathBuf, name: String, arch: &'static str },

    #[error("{path}: tensor {name:?} has shape {got:?}, but the config says {want:?}")]
    Shape { path: PathBuf, name: String, got: Vec<usize>, want: Vec<usize> },

    #[error("{path}: tensor {name:?} has type {dtype}, which the runner cannot use")]
    Dtype { path: PathBuf, name: String, dtype: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("the prompt has {prompt} tokens, but the model's context holds {context}")]
    ContextOverflow { prompt: usize, context: usize },

    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenId { id: u32, vocab: usize },

    #[error("{0}")]
    Invalid(String),

    #[error(transparent)]
    Weights(#[from] zoo_weights::WeightsError),

    #[error(transparent)]
    Kernel(#[from] zoo_kernels::KernelError),

    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl InferError {
    pub(crate) fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> InferError {
        InferError::Config { path: path.into(), msg: msg.into() }
    }
}
