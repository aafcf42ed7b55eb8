//! The one error type of this crate: every variant carries the facts a user needs to act.

use std::path::PathBuf;

use crate::dtype::Dtype;

/// Everything that can go wrong while reading, writing or transforming checkpoints.
///
/// Paths are the files (or folders) the problem was found in; tensor names, shapes, offsets
/// and refused pickle globals are carried as data so that callers can print or match them.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not found")]
    NotFound { path: PathBuf },

    #[error("{path}: no checkpoint found (looked for {looked_for})")]
    NoCheckpoint { path: PathBuf, looked_for: String },

    #[error("{path}: more than one checkpoint candidate: {}; pass the file to use", candidates.join(", "))]
    AmbiguousCheckpoint { path: PathBuf, candidates: Vec<String> },

    #[error("{path}: unrecognised file format ({reason})")]
    UnknownFormat { path: PathBuf, reason: String },

    #[error("{path}: file is {len} bytes, too short for {what} (needs at least {needed})")]
    TooShort { path: PathBuf, len: u64, needed: u64, what: &'static str },

    #[error(
        "{path}: safetensors header length {header_len} is impossible for a file of {file_len} bytes (limit {limit})"
    )]
    SafetensorsHeaderLength { path: PathBuf, header_len: u64, file_len: u64, limit: u64 },

    #[error("{path}: safetensors header is not valid JSON: {message}")]
    SafetensorsHeaderJson { path: PathBuf, message: String },

    #[error("{path}: safetensors header is not a JSON object")]
    SafetensorsHeaderNotObject { path: PathBuf },

    #[error("{path}: tensor `{tensor}`: malformed header entry: {reason}")]
    SafetensorsEntry { path: PathBuf, tensor: String, reason: String },

    #[error("{path}: tensor `{tensor}`: unknown dtype `{dtype}`")]
    UnknownDtype { path: PathBuf, tensor: String, dtype: String },

    #[error("{path}: tensor `{tensor}`: data offsets [{begin}, {end}) out of range (data section is {data_len} bytes)")]
    OffsetsOutOfRange { path: PathBuf, tensor: String, begin: u64, end: u64, data_len: u64 },

    #[error(
        "{path}: tensor `{tensor}`: data offsets [{begin}, {end}) overlap or leave a gap (expected to start at {expected_begin})"
    )]
    OffsetsNotContiguous { path: PathBuf, tensor: String, begin: u64, end: u64, expected_begin: u64 },

    #[error("{path}: data section is {data_len} bytes but tensors end at {covered}")]
    TrailingData { path: PathBuf, data_len: u64, covered: u64 },

    #[error("{path}: tensor `{tensor}`: shape {shape:?} of {dtype} needs {expected} bytes, the file gives {actual}")]
    ByteCountMismatch { path: PathBuf, tensor: String, dtype: Dtype, shape: Vec<u64>, expected: u64, actual: u64 },

    #[error("{path}: bad shard index: {reason}")]
    BadIndex { path: PathBuf, reason: String },

    #[error("{index}: names shard `{shard}`, which does not exist")]
    MissingShard { index: PathBuf, shard: String },

    #[error("{index}: shard path `{shard}` points outside the checkpoint folder")]
    ShardOutsideFolder { index: PathBuf, shard: String },

    #[error("{index}: lists tensor `{tensor}` in shard `{shard}`, which does not hold it")]
    IndexTensorMissing { index: PathBuf, shard: String, tensor: String },

    #[error("tensor `{tensor}` appears twice: in {first} and in {second}")]
    DuplicateTensor { tensor: String, first: PathBuf, second: PathBuf },

    #[error("{path}: broken zip archive: {reason}")]
    Zip { path: PathBuf, reason: String },

    #[error(
        "{path}: zip entry `{entry}` is compressed (method {method}); PyTorch checkpoints store entries uncompressed"
    )]
    ZipCompressed { path: PathBuf, entry: String, method: u16 },

    #[error("{path}: zip archive has no entry `{entry}`")]
    ZipEntryMissing { path: PathBuf, entry: String },

    #[error("{path}: legacy torch.save format (before PyTorch 1.6); re-save it with torch>=1.6")]
    LegacyTorch { path: PathBuf },

    #[error("{path}: pickle byte {offset}: {reason}")]
    Pickle { path: PathBuf, offset: u64, reason: String },

    #[error("{path}: pickle refers to `{global}`, which is not on the allow-list; nothing was executed")]
    PickleGlobalRefused { path: PathBuf, global: String },

    #[error("{path}: tensor `{tensor}` (shape {shape:?}, stride {stride:?}) is not contiguous")]
    NonContiguous { path: PathBuf, tensor: String, shape: Vec<u64>, stride: Vec<u64> },

    #[error("{path}: tensor `{tensor}`: {reason}")]
    TorchTensor { path: PathBuf, tensor: String, reason: String },

    #[error("{path}: not a GGUF file (magic {magic:02x?})")]
    GgufBadMagic { path: PathBuf, magic: [u8; 4] },

    #[error("{path}: GGUF version {version} is not supported (only 2 and 3)")]
    GgufVersion { path: PathBuf, version: u32 },

    #[error("{path}: GGUF {what} {value} is absurd (at most {limit} fits in this file)")]
    GgufAbsurd { path: PathBuf, what: String, value: u64, limit: u64 },

    #[error("{path}: GGUF tensor `{tensor}` has unknown ggml type {type_id}")]
    GgufUnknownType { path: PathBuf, tensor: String, type_id: u32 },

    #[error("{path}: GGUF: {reason}")]
    Gguf { path: PathBuf, reason: String },

    #[error("tensor `{tensor}`: read of {len} bytes at {offset} is past its end ({byte_len} bytes)")]
    ReadOutOfRange { tensor: String, offset: u64, len: u64, byte_len: u64 },

    #[error("tensor `{tensor}` is {byte_len} bytes, more than the {limit} bytes allowed here")]
    TensorTooLarge { tensor: String, byte_len: u64, limit: u64 },

    #[error("{path}: already exists; choose another destination or allow overwriting")]
    DestinationExists { path: PathBuf },

    #[error(
        "{path}: architecture `{arch}` is not supported for GGUF conversion (supported: {supported}; --raw keeps names as they are)"
    )]
    UnsupportedArchitecture { path: PathBuf, arch: String, supported: &'static str },

    #[error("{path}: {reason}")]
    BadModelFile { path: PathBuf, reason: String },

    #[error("invalid output: {reason}")]
    InvalidOutput { reason: String },

    #[error("cancelled")]
    Cancelled,

    /// Internal: the writer thread stopped (its own error is reported instead).
    #[error("the output writer stopped")]
    ChannelClosed,

    #[error("tensor `{tensor}` is in the {present} checkpoint but not in the {missing} checkpoint")]
    DeltaMissingTensor { tensor: String, present: &'static str, missing: &'static str },

    #[error(
        "tensor `{tensor}`: base is {base_dtype} {base_shape:?}, {other} is {other_dtype} {other_shape:?}; {reason}"
    )]
    DeltaMismatch {
        tensor: String,
        base_dtype: Dtype,
        base_shape: Vec<u64>,
        /// `delta` (apply) or `target` (make).
        other: &'static str,
        other_dtype: Dtype,
        other_shape: Vec<u64>,
        reason: &'static str,
    },

    #[error("tensor `{tensor}`: dtype {dtype} is not supported for {op}")]
    UnsupportedDtype { tensor: String, dtype: Dtype, op: &'static str },

    #[error("{path}: {reason}")]
    GptqConfig { path: PathBuf, reason: String },

    #[error("{path}: GPTQ with {bits} bits is not supported (only 2, 4 and 8 bits)")]
    GptqBits { path: PathBuf, bits: i64 },

    #[error("{path}: no GPTQ modules (no tensor name ends in `.qweight`)")]
    GptqNoModules { path: PathBuf },

    #[error("GPTQ module `{module}`: tensor `{tensor}` is missing")]
    GptqMissingTensor { module: String, tensor: String },

    #[error("GPTQ module `{module}`: {reason}")]
    GptqModule { module: String, reason: String },

    #[error("GPTQ pack: {reason}")]
    GptqPack { reason: String },
}

impl From<zoo_atomic_write::Error> for WeightsError {
    fn from(e: zoo_atomic_write::Error) -> Self {
        WeightsError::Io { path: e.path, op: e.op, source: e.source }
    }
}

impl WeightsError {
    /// Whether the checkpoint or the request is at fault (a refused file: exit 1 in the CLI),
    /// as opposed to the machine: a file that cannot be read or written (a full disk, a size
    /// limit, a permission) or a cancellation is an error of the environment (exit 2). A file
    /// that ends early is the checkpoint's fault, and a missing one a miss.
    pub fn is_refusal(&self) -> bool {
        match self {
            WeightsError::Io { source, .. } => {
                matches!(source.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::NotFound)
            }
            WeightsError::Cancelled | WeightsError::ChannelClosed => false,
            _ => true,
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = WeightsError> = std::result::Result<T, E>;

/// Builds an `Io` error with the path and the operation that failed.
pub(crate) fn io_err(path: impl Into<PathBuf>, op: &'static str) -> impl FnOnce(std::io::Error) -> WeightsError {
    let path = path.into();
    move |source| WeightsError::Io { path, op, source }
}
