//! The candle inference runner: LLaMA, BLOOM, Qwen2, Gemma and Baichuan models from
//! safetensors, PyTorch `.bin` or GGUF files; tokenizers; sampling and the decode loop.
//!
//! Dense layers run on candle; GGML block-quantized weights run on the kernels of
//! `zoo-kernels` through a candle custom op.

pub mod config;
pub mod error;
pub mod generate;
pub mod layers;
pub mod models;
pub mod runner;
pub mod tokenizer;
pub mod weights;

pub use config::{Arch, ModelConfig};
pub use error::{InferError, Result};
pub use generate::{FinishReason, Generation, SamplingParams, Session, Step};
pub use layers::set_threads;
pub use models::{CausalLm, Logits};
pub use runner::{GenerationDefaults, LoadedModel, load};
pub use tokenizer::Tokenizer;
