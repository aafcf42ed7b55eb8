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
    Weights(Box<zoo_weights::WeightsError>),

    #[error(transparent)]
    Kernel(Box<zoo_kernels::KernelError>),

    #[error(transparent)]
    Gptq(Box<zoo_weights::gptq::GptqError>),

    #[error("tensor computation failed: {0}")]
    Candle(Box<candle_core::Error>),

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

// Boxed: the foreign errors are large, and every `Result` of the decode loop carries this type.
impl From<zoo_weights::WeightsError> for InferError {
    fn from(e: zoo_weights::WeightsError) -> Self {
        InferError::Weights(Box::new(e))
    }
}

impl From<zoo_kernels::KernelError> for InferError {
    fn from(e: zoo_kernels::KernelError) -> Self {
        InferError::Kernel(Box::new(e))
    }
}

impl From<candle_core::Error> for InferError {
    fn from(e: candle_core::Error) -> Self {
        InferError::Candle(Box::new(e))
    }
}

impl InferError {
    /// Whether the model or the request is at fault (exit 1 in the CLI), as opposed to the
    /// machine (an unreadable file, a full disk: exit 2); see [`zoo_weights::WeightsError::is_refusal`].
    pub fn is_refusal(&self) -> bool {
        match self {
            InferError::Weights(w) => w.is_refusal(),
            InferError::Io { source, .. } => {
                matches!(source.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::NotFound)
            }
            _ => true,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> InferError {
        InferError::Config { path: path.into(), msg: msg.into() }
    }
}
