//! What the checkpoint readers (`zoo-weights`) and the matrix kernels (`zoo-kernels`) share,
//! with no dependency of either on the other: the element types of tensors ([`Dtype`],
//! GGML's [`GgmlType`] table of block sizes), the GGML block layouts with ggml's reference
//! quantizers and dequantizers ([`quant`]), and the huge-page buffers weights are held in
//! ([`mem`]).
//!
//! Entry points: [`quant::quantize_row`], [`quant::dequantize_row`],
//! [`quant::quantize_rows_parallel`], [`mem::HugeBytes`]. No I/O, no printing.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod dtype;
pub mod mem;
pub mod quant;

pub use dtype::{Dtype, GgmlType};
pub use quant::{QuantError, QuantType};
