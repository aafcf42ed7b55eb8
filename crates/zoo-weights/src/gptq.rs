//! GPTQ int4 checkpoints in AutoGPTQ's layout: read and validate them, dequantize them to a
//! plain Hugging Face safetensors folder, and write them with a round-to-nearest packer.
//!
//! Layout of one quantized `nn.Linear` named `M` (AutoGPTQ `QuantLinear`, weights `[in, out]`):
//!
//! | tensor | dtype | shape |
//! |---|---|---|
//! | `M.qweight` | int32 | `[in / (32/bits), out]`: 32/bits codes per word along `in`, lowest bits first |
//! | `M.qzeros` | int32 | `[groups, out / (32/bits)]`: zero points MINUS ONE, packed along `out` |
//! | `M.scales` | fp16 | `[groups, out]` |
//! | `M.g_idx` | int32 | `[in]`: the group of each input column (not `k / group_size` with act-order) |
//! | `M.bias` | fp16 | `[out]`, optional, kept as is |
//!
//! and `w[k, o] = scale[g_idx[k], o] * (q[k, o] - (z[g_idx[k], o] + 1))`; the HF weight is the
//! transpose, `[out, in]`. A stored zero nibble of all ones means zero `2^bits` here (the
//! unmasked reading of the CUDA kernels); AutoGPTQ's torch fallback masks it to 0 instead.
//! Neither AutoGPTQ's quantizer nor [`pack_rtn`] writes that nibble, except AutoGPTQ after a
//! zero point of 0, which it cannot store.
//!
//! Bits 2, 4 and 8 are read (codes never straddle words); 3 is refused. [`pack_rtn`] writes 4.
//! Memory: one module's tensors and its dequantized weight at a time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use half::f16;
use serde_json::Value;

use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::dtype::Dtype;
use crate::error::WeightsError;
use crate::safetensors::TensorSpec;
use crate::writer::{SafetensorsWriter, WriteOptions, WriteReport};

/// Name of AutoGPTQ's config file.
pub const QUANTIZE_CONFIG: &str = "quantize_config.json";
/// Largest `quantize_config.json` read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Bytes copied at a time for tensors that are passed through.
const COPY_CHUNK: usize = 8 << 20;

/// Last path component of the Linear layers [`quantize_folder`] packs (LLaMA and BLOOM).
pub const LINEAR_NAMES: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "query_key_value",
    "dense",
    "dense_h_to_4h",
    "dense_4h_to_h",
];

/// The old name of this module's errors, kept so that callers written against it still build:
/// they are [`WeightsError`]s now (the `Gptq*` variants), the crate's one error enum.
pub type GptqError = WeightsError;

/// Shorthand for this module.
pub type Result<T, E = WeightsError> = std::result::Result<T, E>;

/// `quantize_config.json` as AutoGPTQ writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqConfig {
    pub bits: u32,
    /// `None` for `group_size: -1` (one group over the whole input dimension).
    pub group_size: Option<u64>,
    pub desc_act: bool,
    pub damp_percent: f64,
    /// `sym` when present (AutoGPTQ's default is `true`); informational only.
    pub sym: Option<bool>,
}

impl GptqConfig {
    /// Reads `quantize_config.json` from a file.
    pub fn load(path: &Path) -> Result<GptqConfig> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => WeightsError::NotFound { path: path.into() },
            _ => WeightsError::Io { path: path.into(), op: "stat", source: e },
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(config_err(path, format!("{} bytes is too large for a quantize config", meta.len())));
        }
        let text = std::fs::read_to_string(path).map_err(|source| WeightsError::Io {
            path: path.into(),
            op: "read",
            source,
        })?;
        GptqConfig::parse(path, &text)
    }

    /// Parses the JSON text of a `quantize_config.json` (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<GptqConfig> {
        let v: Value = serde_json::from_str(text).map_err(|e| config_err(path, format!("not valid JSON: {e}")))?;
        let Some(obj) = v.as_object() else {
            return Err(config_err(path, "not a JSON object".into()));
        };
        let int = |key: &str| -> Result<i64> {
            match obj.get(key) {
                Some(x) => x.as_i64().ok_or_else(|| config_err(path, format!("`{key}` is {x}, not an integer"))),
                None => Err(config_err(path, format!("`{key}` is missing"))),
            }
        };
        let bits = int("bits")?;
        if !matches!(bits, 2 | 4 | 8) {
            return Err(WeightsError::GptqBits { path: path.into(), bits });
        }
        let group_size = match int("group_size")? {
            -1 => None,
            g if g > 0 => Some(g.unsigned_abs()),
            g => return Err(config_err(path, format!("`group_size` is {g}; expected -1 or a positive size"))),
        };
        let desc_act = match obj.get("desc_act") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(x) => return Err(config_err(path, format!("`desc_act` is {x}, not true or false"))),
        };
        let damp_percent = match obj.get("damp_percent") {
            None | Some(Value::Null) => 0.01,
            Some(x) => x.as_f64().ok_or_else(|| config_err(path, format!("`damp_percent` is {x}, not a number")))?,
        };
        let sym = obj.get("sym").and_then(Value::as_bool);
        Ok(GptqConfig { bits: bits.unsigned_abs() as u32, group_size, desc_act, damp_percent, sym })
    }

    /// The JSON AutoGPTQ expects, for a checkpoint written as `model.safetensors`.
    pub fn to_json(&self) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("bits".into(), self.bits.into());
        obj.insert("group_size".into(), self.group_size.map_or(Value::from(-1), Value::from));
        obj.insert("damp_percent".into(), self.damp_percent.into());
        obj.insert("desc_act".into(), self.desc_act.into());
        obj.insert("static_groups".into(), false.into());
        obj.insert("sym".into(), self.sym.unwrap_or(false).into());
        obj.insert("true_sequential".into(), true.into());
        obj.insert("model_name_or_path".into(), Value::Null);
        obj.insert("model_file_base_name".into(), "model".into());
        obj.insert("quant_method".into(), "gptq".into());
        let mut s = serde_json::to_string_pretty(&Value::Object(obj)).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Codes per 32-bit word.
    fn per_word(&self) -> u64 {
        32 / u64::from(self.bits.max(1))
    }
}

fn config_err(path: &Path, reason: String) -> WeightsError {
    WeightsError::GptqConfig { path: path.into(), reason }
}

fn module_err(module: &str, reason: String) -> WeightsError {
    WeightsError::GptqModule { module: module.into(), reason }
}

/// One quantized Linear, validated against the config.
#[derive(Debug, Clone, PartialEq)]
pub struct GptqLinear {
    /// Module path, e.g. `transformer.h.0.self_attention.query_key_value`.
    pub name: String,
    pub in_features: u64,
    pub out_features: u64,
    pub groups: u64,
    pub qweight: TensorInfo,
    pub qzeros: TensorInfo,
    pub scales: TensorInfo,
    /// Absent only in old non-act-order checkpoints; then `g_idx[k] = k / group_size`.
    pub g_idx: Option<TensorInfo>,
    pub bias: Option<TensorInfo>,
}

/// An opened GPTQ checkpoint folder: its config, checkpoint and quantized modules.
#[derive(Debug)]
pub struct GptqModel {
    folder: PathBuf,
    config: GptqConfig,
    checkpoint: Checkpoint,
    modules: Vec<GptqLinear>,
}

/// The weights file of a GPTQ folder: the HF names first, then AutoGPTQ's `gptq_model-*`.
fn pick_weights(folder: &Path) -> Result<PathBuf> {
    for name in ["model.safetensors.index.json", "model.safetensors"] {
        let p = folder.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let mut names = Vec::new();
    let entries =
        std::fs::read_dir(folder).map_err(|source| WeightsError::Io { path: folder.into(), op: "list", source })?;
    for e in entries.flatten() {
        if let Some(n) = e.file_name().to_str()
            && n.starts_with("gptq_model")
            && (n.ends_with(".safetensors") || n.ends_with(".bin"))
            && e.path().is_file()
        {
            names.push(n.to_owned());
        }
    }
    names.sort();
    // Prefer safetensors when both are shipped.
    names.sort_by_key(|n| !n.ends_with(".safetensors"));
    if let Some(first) = names.first() {
        return Ok(folder.join(first));
    }
    Ok(folder.into())
}

impl GptqModel {
    /// Opens a folder with `quantize_config.json` and an AutoGPTQ checkpoint
    /// (`model.safetensors`, `gptq_model-4bit*.safetensors` or `.bin`, or whatever
    /// [`Checkpoint::open`] finds), and validates every quantized module.
    pub fn open(folder: &Path) -> Result<GptqModel> {
        let config = GptqConfig::load(&folder.join(QUANTIZE_CONFIG))?;
        let checkpoint = Checkpoint::open(&pick_weights(folder)?)?;
        let mut modules = Vec::new();
        for t in checkpoint.tensors() {
            if let Some(prefix) = t.name.strip_suffix(".qweight") {
                modules.push(validate_module(&checkpoint, &config, prefix)?);
            }
        }
        if modules.is_empty() {
            return Err(WeightsError::GptqNoModules { path: folder.into() });
        }
        Ok(GptqModel { folder: folder.into(), config, checkpoint, modules })
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn config(&self) -> &GptqConfig {
        &self.config
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The quantized modules, in checkpoint order.
    pub fn modules(&self) -> &[GptqLinear] {
        &self.modules
    }

    /// The quantized module with this name (without `.qweight`).
    pub fn module(&self, name: &str) -> Option<&GptqLinear> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// Dequantizes one module to f32 in the HF Linear layout `[out, in]`, row-major, always
    /// through `g_idx` (so act-order checkpoints come out right).
    pub fn dequantize_linear(&self, m: &GptqLinear) -> Result<Vec<f32>> {
        let ck = &self.checkpoint;
        let qweight = read_words(ck, &m.qweight)?;
        let qzeros = read_words(ck, &m.qzeros)?;
        let scales = read_floats(ck, &m.scales)?;
        let g_idx = match &m.g_idx {
            Some(t) => read_indices(ck, t)?,
            None => default_g_idx(m.in_features, self.config.group_size)?,
        };
        let parts = Parts {
            bits: self.config.bits,
            in_features: m.in_features,
            out_features: m.out_features,
            groups: m.groups,
            qweight: &qweight,
            qzeros: &qzeros,
            scales: &scales,
            g_idx: &g_idx,
        };
        dequantize_parts(&m.name, &parts)
    }
}

fn shape_str(t: &TensorInfo) -> String {
    format!("{} {:?}", t.dtype, t.shape)
}

fn validate_module(ck: &Checkpoint, cfg: &GptqConfig, module: &str) -> Result<GptqLinear> {
    let get = |suffix: &str| ck.get(&format!("{module}.{suffix}")).cloned();
    let missing =
        |suffix: &str| WeightsError::GptqMissingTensor { module: module.into(), tensor: format!("{module}.{suffix}") };
    let qweight = get("qweight").ok_or_else(|| missing("qweight"))?;
    let qzeros = get("qzeros").ok_or_else(|| missing("qzeros"))?;
    let scales = get("scales").ok_or_else(|| missing("scales"))?;
    let g_idx = get("g_idx");
    let bias = get("bias");
    let per = cfg.per_word();

    let (rows, out) = match (qweight.dtype, qweight.shape.as_slice()) {
        (Dtype::I32 | Dtype::U32, &[r, o]) => (r, o),
        _ => {
            return Err(module_err(
                module,
                format!("qweight is {}, expected int32 [in/{per}, out]", shape_str(&qweight)),
            ));
        }
    };
    let in_features = rows
        .checked_mul(per)
        .ok_or_else(|| module_err(module, format!("qweight {:?} is absurdly large", qweight.shape)))?;
    if out == 0 || in_features == 0 {
        return Err(module_err(module, format!("qweight {:?} is empty", qweight.shape)));
    }
    let groups = match cfg.group_size {
        Some(g) => in_features.div_ceil(g),
        None => 1,
    };
    if let Some(g) = &g_idx {
        let ok_dtype = matches!(g.dtype, Dtype::I32 | Dtype::I64);
        if !ok_dtype || g.shape.as_slice() != [in_features] {
            return Err(module_err(
                module,
                format!(
                    "g_idx is {}, but qweight {:?} packs {in_features} inputs ({per} per int32 at {} bits): expected int32 [{in_features}]",
                    shape_str(g),
                    qweight.shape,
                    cfg.bits
                ),
            ));
        }
    } else if cfg.desc_act {
        return Err(WeightsError::GptqMissingTensor {
            module: module.into(),
            tensor: format!("{module}.g_idx (desc_act is true)"),
        });
    }
    if !out.is_multiple_of(per) {
        return Err(module_err(module, format!("{out} outputs cannot be packed {per} per int32 in qzeros")));
    }
    let want_zeros = [groups, out / per];
    if !matches!(qzeros.dtype, Dtype::I32 | Dtype::U32) || qzeros.shape.as_slice() != want_zeros {
        return Err(module_err(
            module,
            format!(
                "qzeros is {}, expected int32 {want_zeros:?} ({groups} groups of {} over {in_features} inputs, {out} outputs packed {per} per int32)",
                shape_str(&qzeros),
                cfg.group_size.map_or("all".to_string(), |g| g.to_string()),
            ),
        ));
    }
    let want_scales = [groups, out];
    if !matches!(scales.dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32) || scales.shape.as_slice() != want_scales {
        return Err(module_err(
            module,
            format!("scales is {}, expected float16 {want_scales:?} (groups, outputs)", shape_str(&scales)),
        ));
    }
    if let Some(b) = &bias
        && (!matches!(b.dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32) || b.shape.as_slice() != [out])
    {
        return Err(module_err(module, format!("bias is {}, expected float16 [{out}]", shape_str(b))));
    }
    Ok(GptqLinear { name: module.into(), in_features, out_features: out, groups, qweight, qzeros, scales, g_idx, bias })
}

/// A `chunks_exact` chunk as an array (always the right length there).
fn le<const N: usize>(c: &[u8]) -> [u8; N] {
    <[u8; N]>::try_from(c).unwrap_or([0; N])
}

fn read_words(ck: &Checkpoint, t: &TensorInfo) -> Result<Vec<u32>> {
    let bytes = ck.read_to_vec(t, t.byte_len)?;
    Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes(le(c))).collect())
}

fn read_indices(ck: &Checkpoint, t: &TensorInfo) -> Result<Vec<u32>> {
    let bytes = ck.read_to_vec(t, t.byte_len)?;
    let bad = |v: i64| WeightsError::GptqModule {
        module: t.name.clone(),
        reason: format!("g_idx holds {v}, not a group number"),
    };
    match t.dtype {
        Dtype::I64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let v = i64::from_le_bytes(le(c));
                u32::try_from(v).map_err(|_| bad(v))
            })
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| {
                let v = i32::from_le_bytes(le(c));
                u32::try_from(v).map_err(|_| bad(v.into()))
            })
            .collect(),
    }
}

fn read_floats(ck: &Checkpoint, t: &TensorInfo) -> Result<Vec<f32>> {
    let bytes = ck.read_to_vec(t, t.byte_len)?;
    to_f32(&t.name, t.dtype, &bytes)
}

fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F16 => bytes.chunks_exact(2).map(|c| f16::from_le_bytes(le(c)).to_f32()).collect(),
        Dtype::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes(le(c)).to_f32()).collect(),
        Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes(le(c))).collect(),
        d => {
            return Err(WeightsError::UnsupportedDtype { tensor: name.into(), dtype: d, op: "GPTQ (de)quantization" });
        }
    })
}

fn default_g_idx(in_features: u64, group_size: Option<u64>) -> Result<Vec<u32>> {
    (0..in_features)
        .map(|k| {
            let g = group_size.map_or(0, |g| k / g);
            u32::try_from(g).map_err(|_| WeightsError::GptqPack { reason: format!("group {g} does not fit in int32") })
        })
        .collect()
}

/// The unpacked-from-disk pieces of one module (lengths checked by [`dequantize_parts`]).
struct Parts<'a> {
    bits: u32,
    in_features: u64,
    out_features: u64,
    groups: u64,
    qweight: &'a [u32],
    qzeros: &'a [u32],
    scales: &'a [f32],
    g_idx: &'a [u32],
}

fn to_usize(module: &str, v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| module_err(module, format!("{v} does not fit in memory")))
}

fn dequantize_parts(module: &str, p: &Parts<'_>) -> Result<Vec<f32>> {
    let bits = p.bits;
    if !matches!(bits, 2 | 4 | 8) {
        return Err(module_err(module, format!("{bits} bits is not supported")));
    }
    let per = to_usize(module, u64::from(32 / bits))?;
    let mask = (1u32 << bits) - 1;
    let n_in = to_usize(module, p.in_features)?;
    let n_out = to_usize(module, p.out_features)?;
    let groups = to_usize(module, p.groups)?;
    let total = n_in.checked_mul(n_out).ok_or_else(|| module_err(module, "weight too large".into()))?;
    let lens_ok = n_in.is_multiple_of(per)
        && n_out.is_multiple_of(per)
        && p.qweight.len() == total / per
        && p.qzeros.len() == groups.saturating_mul(n_out / per)
        && p.scales.len() == groups.saturating_mul(n_out)
        && p.g_idx.len() == n_in;
    if !lens_ok || n_out == 0 {
        return Err(module_err(module, "tensor lengths do not match the module's shape".into()));
    }
    if let Some((k, g)) = p.g_idx.iter().enumerate().find(|&(_, &g)| g as usize >= groups) {
        return Err(module_err(module, format!("g_idx[{k}] = {g}, but there are only {groups} groups")));
    }
    // z + 1 per (group, output), as f32 (exact: at most 2^bits).
    let mut zeros = Vec::with_capacity(groups.saturating_mul(n_out));
    for &word in p.qzeros {
        for j in 0..per {
            zeros.push((((word >> (j as u32 * bits)) & mask) + 1) as f32);
        }
    }
    let mut w = vec![0f32; total];
    for (r, qrow) in p.qweight.chunks_exact(n_out).enumerate() {
        for j in 0..per {
            let k = r * per + j;
            let g = p.g_idx.get(k).copied().unwrap_or(0) as usize;
            let range = g * n_out..(g + 1) * n_out;
            let (Some(srow), Some(zrow)) = (p.scales.get(range.clone()), zeros.get(range)) else {
                return Err(module_err(module, format!("group {g} out of range")));
            };
            let shift = j as u32 * bits;
            for (o, ((&word, &s), &z)) in qrow.iter().zip(srow).zip(zrow).enumerate() {
                let q = ((word >> shift) & mask) as f32;
                if let Some(slot) = w.get_mut(o * n_in + k) {
                    *slot = s * (q - z);
                }
            }
        }
    }
    Ok(w)
}

/// A Linear packed in AutoGPTQ's layout (row-major vectors of the shapes in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedLinear {
    pub in_features: usize,
    pub out_features: usize,
    pub groups: usize,
    /// `[in / 8, out]`.
    pub qweight: Vec<i32>,
    /// `[groups, out / 8]`, zero points minus one.
    pub qzeros: Vec<i32>,
    /// `[groups, out]`.
    pub scales: Vec<f16>,
    /// `[in]`.
    pub g_idx: Vec<i32>,
}

impl PackedLinear {
    /// Dequantizes back to `[out, in]` f32 (same arithmetic as [`GptqModel::dequantize_linear`]).
    pub fn dequantize(&self) -> Result<Vec<f32>> {
        let qweight: Vec<u32> = self.qweight.iter().map(|&v| v as u32).collect();
        let qzeros: Vec<u32> = self.qzeros.iter().map(|&v| v as u32).collect();
        let scales: Vec<f32> = self.scales.iter().map(|s| s.to_f32()).collect();
        let g_idx: Vec<u32> = self.g_idx.iter().map(|&v| v as u32).collect();
        let parts = Parts {
            bits: 4,
            in_features: self.in_features as u64,
            out_features: self.out_features as u64,
            groups: self.groups as u64,
            qweight: &qweight,
            qzeros: &qzeros,
            scales: &scales,
            g_idx: &g_idx,
        };
        dequantize_parts("packed", &parts)
    }

    /// Little-endian bytes of the four tensors, in the order qweight, qzeros, scales, g_idx.
    pub fn tensor_bytes(&self) -> [Vec<u8>; 4] {
        [
            self.qweight.iter().flat_map(|v| v.to_le_bytes()).collect(),
            self.qzeros.iter().flat_map(|v| v.to_le_bytes()).collect(),
            self.scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
            self.g_idx.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ]
    }
}

/// Scale and zero point of one (output row, group), the RTN rule of [`pack_rtn`].
fn rtn_params(values: impl Iterator<Item = f32>) -> (f32, f16, u32) {
    let (mut lo, mut hi) = (0f32, 0f32);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo == 0.0 && hi == 0.0 {
        (lo, hi) = (-1.0, 1.0);
    }
    let mut scale = (hi - lo) / 15.0;
    let mut zero = (-lo / scale).round_ties_even();
    if zero < 1.0 {
        // Zero 0 cannot be stored minus one: shift the grid so that it is 1.
        zero = 1.0;
        scale = hi / 14.0;
    }
    let zero = zero.min(15.0);
    let mut s16 = f16::from_f32(scale);
    if s16.to_f32() < f16::from_bits(1).to_f32() {
        s16 = f16::from_bits(1);
    }
    (s16.to_f32(), s16, zero as u32)
}

/// Round-to-nearest asymmetric 4-bit quantization of an HF Linear weight `[out, in]` f32,
/// packed exactly as AutoGPTQ stores it (desc_act false: `g_idx[k] = k / group_size`).
/// `group_size` `None` is one group over all inputs (AutoGPTQ's -1).
///
/// Per output row and group, all in f32 with round-half-to-even:
/// `lo = min(0, min w)`, `hi = max(0, max w)` (both 0: -1 and 1); `scale = (hi - lo) / 15`;
/// `zero = round(-lo / scale)`, and if that is 0, `zero = 1, scale = hi / 14` (a zero of 0
/// cannot be stored minus one); `s = f32(f16(scale))`, at least the smallest f16 subnormal;
/// `q = clamp(round(w / s) + zero, 0, 15)`. Dequantized values are within half a step
/// (`s`, up to f16 rounding of the scale) of the input.
pub fn pack_rtn(
    weight: &[f32],
    out_features: usize,
    in_features: usize,
    group_size: Option<usize>,
) -> Result<PackedLinear> {
    const BITS: usize = 4;
    const PER: usize = 32 / BITS;
    let pack_err = |reason: String| WeightsError::GptqPack { reason };
    if in_features == 0 || out_features == 0 || !in_features.is_multiple_of(PER) || !out_features.is_multiple_of(PER) {
        return Err(pack_err(format!(
            "weight [{out_features}, {in_features}]: both dimensions must be positive multiples of {PER}"
        )));
    }
    if Some(weight.len()) != out_features.checked_mul(in_features) {
        return Err(pack_err(format!("{} values for a weight of [{out_features}, {in_features}]", weight.len())));
    }
    if let Some(i) = weight.iter().position(|v| !v.is_finite()) {
        return Err(pack_err(format!("weight element {i} is not finite")));
    }
    let g = match group_size {
        Some(0) => return Err(pack_err("group size 0".into())),
        Some(g) => g.min(in_features),
        None => in_features,
    };
    let groups = in_features.div_ceil(g);
    let mut codes = vec![0u8; in_features * out_features]; // [in, out]
    let mut zeros = vec![0u32; groups * out_features]; // [groups, out]
    let mut scales = vec![f16::ZERO; groups * out_features];
    for (o, row) in weight.chunks_exact(in_features).enumerate() {
        for (gi, chunk) in row.chunks(g).enumerate() {
            let (s, s16, zero) = rtn_params(chunk.iter().copied());
            if !s.is_finite() {
                return Err(pack_err(format!("row {o} group {gi}: the scale overflows float16")));
            }
            let at = gi * out_features + o;
            if let (Some(zs), Some(ss)) = (zeros.get_mut(at), scales.get_mut(at)) {
                (*zs, *ss) = (zero, s16);
            }
            for (j, &v) in chunk.iter().enumerate() {
                let q = ((v / s).round_ties_even() + zero as f32).clamp(0.0, 15.0);
                if let Some(c) = codes.get_mut((gi * g + j) * out_features + o) {
                    *c = q as u8;
                }
            }
        }
    }
    let mut qweight = vec![0u32; in_features / PER * out_features];
    for (r, qrow) in qweight.chunks_exact_mut(out_features).enumerate() {
        for j in 0..PER {
            let Some(src) = codes.get((r * PER + j) * out_features..(r * PER + j + 1) * out_features) else { continue };
            for (word, &c) in qrow.iter_mut().zip(src) {
                *word |= u32::from(c) << (BITS * j);
            }
        }
    }
    let qzeros: Vec<i32> = zeros
        .chunks_exact(PER)
        .map(|zs| zs.iter().enumerate().fold(0u32, |w, (j, &z)| w | ((z - 1) << (BITS * j))) as i32)
        .collect();
    let g_idx = (0..in_features)
        .map(|k| i32::try_from(k / g).map_err(|_| pack_err(format!("group {} does not fit in int32", k / g))))
        .collect::<Result<Vec<i32>>>()?;
    Ok(PackedLinear {
        in_features,
        out_features,
        groups,
        qweight: qweight.into_iter().map(|w| w as i32).collect(),
        qzeros,
        scales,
        g_idx,
    })
}

/// Side files copied next to converted weights (configs and tokenizers).
fn side_files(folder: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(folder) else { return out };
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
        let skip = name == QUANTIZE_CONFIG || name == crate::writer::MANIFEST_NAME || name.ends_with(".index.json");
        let keep = name.ends_with(".json")
            || name == "tokenizer.model"
            || name.ends_with(".tiktoken")
            || name == "merges.txt"
            || name == "vocab.txt";
        if keep && !skip && e.path().is_file() {
            out.push((name, e.path()));
        }
    }
    out.sort();
    out
}

/// `config.json` without `quantization_config` (which would make transformers load GPTQ).
fn plain_config(path: &Path) -> Result<Option<Vec<u8>>> {
    let text = std::fs::read(path).map_err(|source| WeightsError::Io { path: path.into(), op: "read", source })?;
    let Ok(mut v) = serde_json::from_slice::<Value>(&text) else { return Ok(None) };
    let removed = v.as_object_mut().and_then(|o| o.remove("quantization_config"));
    if removed.is_none() {
        return Ok(None);
    }
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    Ok(Some(s.into_bytes()))
}

fn copy_tensor(ck: &Checkpoint, t: &TensorInfo, writer: &mut SafetensorsWriter, buf: &mut [u8]) -> Result<()> {
    ck.for_each_chunk(t, buf, |_, chunk| writer.write(chunk))?;
    Ok(())
}

/// Dequantizes a whole GPTQ model into an HF safetensors folder at `dest`: every quantized
/// module becomes `<module>.weight` `[out, in]` in `dtype` (F16 or F32; F16 rounds each
/// exact f32 value once, to nearest even); every other tensor (biases, embeddings, norms) and
/// the config/tokenizer files are copied. One module is in memory at a time.
pub fn dequantize_to_folder(
    model: &GptqModel,
    dest: &Path,
    dtype: Dtype,
    options: &WriteOptions,
) -> Result<WriteReport> {
    if !matches!(dtype, Dtype::F16 | Dtype::F32) {
        return Err(WeightsError::UnsupportedDtype {
            tensor: "(output)".into(),
            dtype,
            op: "GPTQ dequantization output",
        });
    }
    enum Item<'a> {
        Copy(&'a TensorInfo),
        Dequant(&'a GptqLinear),
    }
    let ck = model.checkpoint();
    let mut owned: HashSet<&str> = HashSet::new();
    for m in model.modules() {
        for t in [Some(&m.qweight), Some(&m.qzeros), Some(&m.scales), m.g_idx.as_ref()].into_iter().flatten() {
            owned.insert(t.name.as_str());
        }
    }
    let mut plan = Vec::new();
    let mut specs = Vec::new();
    for t in ck.tensors() {
        if let Some(prefix) = t.name.strip_suffix(".qweight")
            && let Some(m) = model.module(prefix)
        {
            specs.push(TensorSpec {
                name: format!("{prefix}.weight"),
                dtype,
                shape: vec![m.out_features, m.in_features],
            });
            plan.push(Item::Dequant(m));
        } else if !owned.contains(t.name.as_str()) {
            specs.push(TensorSpec { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone() });
            plan.push(Item::Copy(t));
        }
    }
    let mut writer = SafetensorsWriter::create(dest, specs, options)?;
    let mut buf = vec![0u8; COPY_CHUNK];
    for item in plan {
        match item {
            Item::Copy(t) => copy_tensor(ck, t, &mut writer, &mut buf)?,
            Item::Dequant(m) => {
                let w = model.dequantize_linear(m)?;
                let bytes: Vec<u8> = match dtype {
                    Dtype::F16 => w.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
                    _ => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
                };
                writer.write(&bytes)?;
            }
        }
    }
    for (name, path) in side_files(model.folder()) {
        match (name.as_str(), plain_config(&path)?) {
            ("config.json", Some(bytes)) => writer.add_bytes(&name, &bytes)?,
            _ => writer.add_file(&name, &path)?,
        }
    }
    writer.finish()
}

/// Whether an HF tensor is the weight of a Linear [`quantize_folder`] packs.
pub fn is_packed_linear(t: &TensorInfo) -> bool {
    let Some(module) = t.name.strip_suffix(".weight") else { return false };
    let last = module.rsplit('.').next().unwrap_or(module);
    t.shape.len() == 2 && matches!(t.dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32) && LINEAR_NAMES.contains(&last)
}

/// Writes an AutoGPTQ-layout checkpoint (`model.safetensors` + `quantize_config.json`, bits
/// 4, desc_act false) of the HF checkpoint in `src`: the LLaMA/BLOOM Linear weights (see
/// [`LINEAR_NAMES`]) are packed with [`pack_rtn`], everything else and the config/tokenizer
/// files are copied. One weight is in memory at a time.
pub fn quantize_folder(
    src: &Path,
    dest: &Path,
    group_size: Option<usize>,
    options: &WriteOptions,
) -> Result<WriteReport> {
    let ck = Checkpoint::open(src)?;
    let g = group_size.filter(|&g| g > 0);
    let mut specs = Vec::new();
    for t in ck.tensors() {
        if is_packed_linear(t) {
            let (out, inp) = match t.shape.as_slice() {
                &[o, i] => (o, i),
                _ => continue,
            };
            if inp == 0 || out == 0 || !inp.is_multiple_of(8) || !out.is_multiple_of(8) {
                return Err(WeightsError::GptqPack {
                    reason: format!("`{}` is [{out}, {inp}]: both dimensions must be positive multiples of 8", t.name),
                });
            }
            let groups = g.map_or(1, |g| inp.div_ceil(g as u64));
            let module = t.name.trim_end_matches(".weight");
            specs.push(TensorSpec { name: format!("{module}.qweight"), dtype: Dtype::I32, shape: vec![inp / 8, out] });
            specs.push(TensorSpec {
                name: format!("{module}.qzeros"),
                dtype: Dtype::I32,
                shape: vec![groups, out / 8],
            });
            specs.push(TensorSpec { name: format!("{module}.scales"), dtype: Dtype::F16, shape: vec![groups, out] });
            specs.push(TensorSpec { name: format!("{module}.g_idx"), dtype: Dtype::I32, shape: vec![inp] });
        } else {
            specs.push(TensorSpec { name: t.name.clone(), dtype: t.dtype, shape: t.shape.clone() });
        }
    }
    let mut writer = SafetensorsWriter::create(dest, specs, options)?;
    let mut buf = vec![0u8; COPY_CHUNK];
    for t in ck.tensors() {
        if !is_packed_linear(t) {
            copy_tensor(&ck, t, &mut writer, &mut buf)?;
            continue;
        }
        let (Some(&out), Some(&inp)) = (t.shape.first(), t.shape.get(1)) else { continue };
        let bytes = ck.read_to_vec(t, t.byte_len)?;
        let w = to_f32(&t.name, t.dtype, &bytes)?;
        drop(bytes);
        let (out, inp) = (to_usize(&t.name, out)?, to_usize(&t.name, inp)?);
        let packed =
            pack_rtn(&w, out, inp, g).map_err(|e| WeightsError::GptqPack { reason: format!("`{}`: {e}", t.name) })?;
        for b in packed.tensor_bytes() {
            writer.write(&b)?;
        }
    }
    let cfg =
        GptqConfig { bits: 4, group_size: g.map(|g| g as u64), desc_act: false, damp_percent: 0.01, sym: Some(false) };
    for (name, path) in side_files(ck.folder()) {
        writer.add_file(&name, &path)?;
    }
    writer.add_bytes(QUANTIZE_CONFIG, cfg.to_json().as_bytes())?;
    writer.finish()
}
