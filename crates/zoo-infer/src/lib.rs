//! The candle inference runner: LLaMA, BLOOM, Qwen2, Gemma and Baichuan models from
//! safetensors, PyTorch `.bin` or GGUF files; tokenizers; sampling and generation.
//!
//! An engine: a model's weights are loaded once and shared read-only ([`CausalLm`] is
//! `Send + Sync`, its forward takes `&self`); each sequence's KV caches live in a
//! [`SeqState`] the caller owns; [`CausalLm::forward_batch`] advances several sequences at
//! their own positions in one pass. Dense layers run on candle; 16-bit and GGML
//! block-quantized weights run on the kernels of `zoo-kernels`, on the threads given at load
//! ([`LoadOptions`]).

pub mod config;
pub mod error;
pub mod generate;
pub mod layers;
pub mod models;
pub mod runner;
pub mod state;
pub mod threads;
pub mod tokenizer;
pub mod weights;

pub use config::{Arch, ModelConfig};
pub use error::{InferError, Result};
pub use generate::{FinishReason, Generation, Generator, Sampler, SamplingParams, Session, Step, step_batch};
pub use models::{CausalLm, Logits};
pub use runner::{GenerationDefaults, LoadOptions, LoadedModel, TextSide, load, load_text, load_with};
pub use state::{SeqInput, SeqState};
pub use threads::Threads;
pub use tokenizer::Tokenizer;
