//! Checkpoint formats and weight transforms: read safetensors, PyTorch `.bin` and GGUF
//! checkpoints (single or sharded) without loading them, write sharded safetensors folders
//! atomically with a hash manifest, and apply or make delta weights in bounded memory.
//!
//! Entry points: [`Checkpoint::open`] to list and stream tensors, [`SafetensorsWriter`] to
//! write, [`delta::apply`] / [`delta::make`] for deltas. Errors are one enum,
//! [`WeightsError`]; progress goes through `zoo_progress`, never to the terminal.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod checkpoint;
pub mod delta;
pub mod error;
pub mod gguf;
pub mod gguf_convert;
pub mod gguf_vocab;
pub mod gguf_write;
pub mod gptq;
pub mod kernels;
pub mod pickle;
pub mod safetensors;
pub mod torch;
pub mod writer;
pub mod zip;

// Moved to `zoo-ggml` (shared with `zoo-kernels`); the old paths stay.
pub use zoo_ggml::{dtype, mem, quant};

pub use checkpoint::{Checkpoint, Format, TensorInfo};
pub use delta::{Algorithm, DeltaOptions, DeltaReport};
pub use dtype::{Dtype, GgmlType};
pub use error::{Result, WeightsError};
pub use safetensors::TensorSpec;
pub use writer::{DEFAULT_MAX_SHARD_SIZE, FileRecord, MANIFEST_NAME, SafetensorsWriter, WriteOptions, WriteReport};
