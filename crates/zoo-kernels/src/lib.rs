//! CPU kernels for GGML-quantized weights: matrix products of quantized weight matrices with
//! f32 activations, computed the way llama.cpp does it (activations quantized once per call to
//! 8-bit blocks, then integer dot products per block), plus the thread pool that runs them.
//!
//! Entry points: [`matmul`] (and [`matmul_with`] to pick a [`Backend`]), [`QMatrix`],
//! [`ThreadPool`], [`dequantize_row`]. Activation formats live in [`act`].
//!
//! One binary serves every x86-64 CPU: the AVX2/FMA/F16C kernels are chosen at run time
//! ([`Backend::detect`]); every type also has a portable scalar path that computes the same
//! sums (up to float rounding order).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

/// The copy of the x86 kernels `$backend` picks, as `$run!(module, args..)` with `module` one of
/// `vnni512`, `avxvnni`, `plain` (a backend the CPU lacks runs `plain`, the AVX2 copy); for
/// [`Backend::Scalar`] the calling function returns false. One place for the policy that
/// `avx2::legacy_rows` and `packed::avx2::groups` (and their tests) share.
#[cfg(target_arch = "x86_64")]
macro_rules! by_backend {
    ($backend:expr, $run:ident, $($arg:expr),* $(,)?) => {
        match $backend {
            Backend::Vnni512 if $backend.is_available() => $run!(vnni512, $($arg),*),
            Backend::AvxVnni if $backend.is_available() => $run!(avxvnni, $($arg),*),
            Backend::Scalar => return false,
            _ => $run!(plain, $($arg),*),
        }
    };
}

pub mod act;
pub mod attn;
#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod coded;
pub mod dense16;
pub mod gemv;
pub mod greedy;
mod matmul;
pub mod packed;
mod pool;
mod scalar;

/// A seeded xorshift64 stream: the unit tests' one source of random numbers.
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

use std::fmt;

pub use dense16::{Half, bf16_dot_products, matmul_dense, matmul_dense_with, matmul_half};
pub use gemv::{DenseRows, gemv};
pub use greedy::{CodedHead, GreedyHead, SplitHead, gemv_greedy};
pub use matmul::{matmul, matmul_with};
pub use packed::Layout;
pub use pool::ThreadPool;
pub use zoo_ggml::quant::QuantType;

/// What can go wrong: only inputs of the wrong shape. Kernels never panic on bad input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// `cols` is not a whole number of blocks of the type.
    Cols { qtype: QuantType, cols: usize, block_size: usize },
    /// The weight bytes are not `rows * row_bytes`.
    DataLength { qtype: QuantType, expected: usize, got: usize },
    /// The activations are not `m * cols` values.
    InputLength { expected: usize, got: usize },
    /// The output is not `m * rows` values.
    OutputLength { expected: usize, got: usize },
    /// A size does not fit in `usize`.
    Overflow,
    /// A dequantization failed (lengths), as reported by `zoo_ggml`.
    Dequantize(String),
    /// A packed layout ([`Layout::Packed8`]) asked of a type without one, or of a row count
    /// that is not a multiple of [`packed::GROUP`].
    Packed { qtype: QuantType, rows: usize },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Cols { qtype, cols, block_size } => {
                write!(f, "{qtype}: {cols} columns are not a whole number of {block_size}-value blocks")
            }
            KernelError::DataLength { qtype, expected, got } => {
                write!(f, "{qtype}: weight data has {got} bytes, the shape needs {expected}")
            }
            KernelError::InputLength { expected, got } => {
                write!(f, "activations have {got} values, the shape needs {expected}")
            }
            KernelError::OutputLength { expected, got } => {
                write!(f, "output has room for {got} values, the shape needs {expected}")
            }
            KernelError::Overflow => f.write_str("matrix size overflows usize"),
            KernelError::Dequantize(msg) => write!(f, "dequantize: {msg}"),
            KernelError::Packed { qtype, rows } => {
                write!(f, "{qtype}: {rows} rows have no packed layout (a packed layout needs a multiple of 8 rows)")
            }
        }
    }
}

impl std::error::Error for KernelError {}

/// A quantized weight matrix borrowed from GGUF tensor bytes.
///
/// `rows` is the number of output features (n), `cols` the number of input features (k); a
/// GGUF tensor of ggml shape `[cols, rows]` stores exactly this: `rows` rows of
/// `cols / block_size` blocks each, row after row.
#[derive(Debug, Clone, Copy)]
pub struct QMatrix<'a> {
    pub data: &'a [u8],
    pub qtype: QuantType,
    pub rows: usize,
    pub cols: usize,
    /// The file's row-major layout, or re-laid at load by [`packed::pack`].
    pub layout: Layout,
}

impl<'a> QMatrix<'a> {
    /// A matrix view, after checking that `cols` is a whole number of blocks and that `data`
    /// holds exactly `rows` rows.
    pub fn new(data: &'a [u8], qtype: QuantType, rows: usize, cols: usize) -> Result<Self, KernelError> {
        let w = QMatrix { data, qtype, rows, cols, layout: Layout::Rows };
        w.validate()?;
        Ok(w)
    }

    /// A view of a matrix in the [`Layout::Packed8`] layout (made by [`packed::pack`]), after
    /// checking that the type and row count have one and that `data` holds all of it.
    pub fn packed(data: &'a [u8], qtype: QuantType, rows: usize, cols: usize) -> Result<Self, KernelError> {
        let w = QMatrix { data, qtype, rows, cols, layout: Layout::Packed8 };
        w.validate()?;
        Ok(w)
    }

    /// Bytes per row (`cols / block_size * type_size`), or an error if `cols` is not a whole
    /// number of blocks.
    pub fn row_bytes(&self) -> Result<usize, KernelError> {
        let bs = self.qtype.block_size();
        if !self.cols.is_multiple_of(bs) {
            return Err(KernelError::Cols { qtype: self.qtype, cols: self.cols, block_size: bs });
        }
        Ok(self.cols / bs * self.qtype.type_size())
    }

    /// Checks the invariants [`QMatrix::new`] checks (the fields are public, so [`matmul`]
    /// checks them again).
    pub fn validate(&self) -> Result<(), KernelError> {
        let plain = self.rows.checked_mul(self.row_bytes()?).ok_or(KernelError::Overflow)?;
        let expected = match self.layout {
            Layout::Rows => plain,
            Layout::Packed8 => packed::packed_len(self.qtype, self.rows, self.cols)
                .ok_or(KernelError::Packed { qtype: self.qtype, rows: self.rows })?,
        };
        if self.data.len() != expected {
            return Err(KernelError::DataLength { qtype: self.qtype, expected, got: self.data.len() });
        }
        Ok(())
    }

    /// The bytes of row `r`, if it exists (`None` in a packed layout, where rows interleave).
    pub fn row(&self, r: usize) -> Option<&'a [u8]> {
        if self.layout != Layout::Rows {
            return None;
        }
        let rb = self.row_bytes().ok()?;
        self.data.get(r.checked_mul(rb)?..r.checked_add(1)?.checked_mul(rb)?)
    }
}

/// Which implementation [`matmul_with`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Portable Rust, no SIMD intrinsics (the compiler may still vectorize).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C kernels (only chosen when the CPU has them).
    Avx2,
    /// [`Backend::Avx2`] with AVX-VNNI `vpdpbusd` (VEX form) in the legacy-type kernels: Intel
    /// client cores since Alder Lake and Xeons since Sapphire Rapids.
    AvxVnni,
    /// [`Backend::Avx2`] with AVX512-VNNI `vpdpbusd` on 256-bit vectors and 32 vector registers
    /// (a wider tile) in the quantized kernels, and 512-bit tiles for dense prompts (bf16
    /// weights as `vdpbf16ps` pairs where the CPU has AVX512-BF16, see
    /// [`bf16_dot_products`]): Xeons since Cascade Lake, AMD since Zen 4.
    Vnni512,
}

impl Backend {
    /// The fastest backend this CPU supports, checked once, then cached. `ZOO_KERNELS=scalar|
    /// avx2|avxvnni|vnni512` picks a slower one (for benchmarks; one the CPU lacks is ignored).
    pub fn detect() -> Backend {
        use std::sync::OnceLock;
        static BEST: OnceLock<Backend> = OnceLock::new();
        *BEST.get_or_init(|| {
            let wanted = match std::env::var("ZOO_KERNELS").as_deref() {
                Ok("scalar") => Some(Backend::Scalar),
                Ok("avx2") => Some(Backend::Avx2),
                Ok("avxvnni") => Some(Backend::AvxVnni),
                Ok("vnni512") => Some(Backend::Vnni512),
                _ => None,
            };
            match wanted {
                Some(b) if b.is_available() => b,
                _ => Backend::ALL.into_iter().rev().find(|b| b.is_available()).unwrap_or(Backend::Scalar),
            }
        })
    }

    /// Every backend, slowest first.
    pub const ALL: [Backend; 4] = [Backend::Scalar, Backend::Avx2, Backend::AvxVnni, Backend::Vnni512];

    /// True if this backend can run on this CPU.
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Backend::Scalar => true,
                Backend::Avx2 => avx2::available(),
                Backend::AvxVnni => avx2::available() && is_x86_feature_detected!("avxvnni"),
                Backend::Vnni512 => {
                    avx2::available()
                        && is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Backend::Scalar
        }
    }

    /// True for the x86-64 backends, which share the AVX2 kernels of every other operation.
    pub fn is_x86(self) -> bool {
        self != Backend::Scalar
    }
}

/// Expands quantized blocks into f32 (embedding lookups): forwards to
/// `zoo_ggml::quant::dequantize_row`, whose values are ggml's.
pub fn dequantize_row(qtype: QuantType, src: &[u8], dst: &mut [f32]) -> Result<(), KernelError> {
    zoo_ggml::quant::dequantize_row(qtype, src, dst).map_err(|e| KernelError::Dequantize(e.to_string()))
}
