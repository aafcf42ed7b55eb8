//! GGUF v2/v3 files: header, metadata of every value type, tensor infos and data offsets.
//!
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated from it, so a hostile header gives an error, never a huge allocation.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::dtype::{Dtype, GgmlType};
use crate::error::{Result, WeightsError, io_err};

/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Deepest array nesting accepted (arrays of arrays of ...).
const MAX_ARRAY_DEPTH: u32 = 8;
/// Most dimensions a tensor may have (ggml has 4).
const MAX_DIMS: u32 = 8;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// A tensor info record.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensor {
    pub name: String,
    /// ggml order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Relative to the data section, as stored.
    pub offset: u64,
    /// Absolute offset in the file.
    pub file_offset: u64,
    pub byte_len: u64,
}

/// A parsed GGUF file header.
#[derive(Debug, Clone, PartialEq)]
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    /// Key/value pairs in file order.
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<GgufTensor>,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_start: u64,
}

impl Gguf {
    /// The metadata value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

struct Reader<'a> {
    path: &'a Path,
    inner: BufReader<&'a File>,
    pos: u64,
    len: u64,
}

impl Reader<'_> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        if self.remaining() < N as u64 {
            return Err(self.truncated());
        }
        self.inner.read_exact(&mut b).map_err(io_err(self.path, "read"))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn truncated(&self) -> WeightsError {
        WeightsError::Gguf { path: self.path.into(), reason: format!("truncated at byte {}", self.pos) }
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// Checks that `count` items of at least `min_size` bytes each fit in what remains.
    fn check_count(&self, what: impl Into<String>, count: u64, min_size: u64) -> Result<()> {
        let limit = self.remaining() / min_size.max(1);
        if count > limit {
            return Err(WeightsError::GgufAbsurd { path: self.path.into(), what: what.into(), value: count, limit });
        }
        Ok(())
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64()?;
        self.check_count(format!("{what} length"), len, 1)?;
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf).map_err(io_err(self.path, "read"))?;
        self.pos += len;
        String::from_utf8(buf)
            .map_err(|_| WeightsError::Gguf { path: self.path.into(), reason: format!("{what} is not valid UTF-8") })
    }

    fn value(&mut self, ty: u32, depth: u32) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(u8::from_le_bytes(self.bytes()?)),
            1 => MetaValue::I8(i8::from_le_bytes(self.bytes()?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.bytes()?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.bytes()?)),
            4 => MetaValue::U32(self.u32()?),
            5 => MetaValue::I32(i32::from_le_bytes(self.bytes()?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.bytes()?)),
            7 => match self.bytes::<1>()? {
                [0] => MetaValue::Bool(false),
                [1] => MetaValue::Bool(true),
                [b] => return Err(self.bad(format!("bool value {b}"))),
            },
            8 => MetaValue::String(self.string("string")?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.bad(format!("arrays nested deeper than {MAX_ARRAY_DEPTH}")));
                }
                let elem = self.u32()?;
                let count = self.u64()?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => return Err(self.bad(format!("unknown metadata value type {other}"))),
                };
                self.check_count("array element count", count, min)?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64()?),
            11 => MetaValue::I64(i64::from_le_bytes(self.bytes()?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.bytes()?)),
            other => return Err(self.bad(format!("unknown metadata value type {other}"))),
        })
    }

    fn bad(&self, reason: String) -> WeightsError {
        WeightsError::Gguf { path: self.path.into(), reason }
    }
}

/// Reads the header, metadata and tensor infos of a GGUF file of length `file_len`.
pub fn read(path: &Path, file: &File, file_len: u64) -> Result<Gguf> {
    if file_len < 24 {
        return Err(WeightsError::TooShort { path: path.into(), len: file_len, needed: 24, what: "a GGUF header" });
    }
    let mut r = Reader { path, inner: BufReader::with_capacity(1 << 16, file), pos: 0, len: file_len };
    let magic = r.bytes::<4>()?;
    if &magic != b"GGUF" {
        return Err(WeightsError::GgufBadMagic { path: path.into(), magic });
    }
    let version = r.u32()?;
    if version != 2 && version != 3 {
        return Err(WeightsError::GgufVersion { path: path.into(), version });
    }
    let tensor_count = r.u64()?;
    let kv_count = r.u64()?;
    // Smallest tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
    r.check_count("tensor count", tensor_count, 24)?;
    // Smallest key/value: key length (8) + type (4) + one byte.
    r.check_count("metadata count", kv_count, 13)?;
    let mut metadata = Vec::with_capacity(kv_count as usize);
    for _ in 0..kv_count {
        let key = r.string("metadata key")?;
        let ty = r.u32()?;
        let v = r.value(ty, 0)?;
        metadata.push((key, v));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
            _ => return Err(r.bad(format!("general.alignment {v:?} is not a power of two"))),
        },
    };
    r.check_count("tensor count", tensor_count, 24)?;
    let mut infos = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let name = r.string("tensor name")?;
        let n_dims = r.u32()?;
        if n_dims > MAX_DIMS {
            return Err(WeightsError::GgufAbsurd {
                path: path.into(),
                what: format!("dimension count of `{name}`"),
                value: n_dims.into(),
                limit: MAX_DIMS.into(),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let type_id = r.u32()?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(WeightsError::GgufUnknownType { path: path.into(), tensor: name, type_id });
        };
        let offset = r.u64()?;
        infos.push((name, dims, ggml_type, offset));
    }
    let data_start = r.pos.div_ceil(alignment).saturating_mul(alignment);
    let data_len = file_len.saturating_sub(data_start);
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, dims, ggml_type, offset) in infos {
        let inner = dims.first().copied().unwrap_or(1);
        let rows = dims.iter().skip(1).try_fold(1u64, |a, &d| a.checked_mul(d));
        let Some(byte_len) = ggml_type.byte_size(inner).zip(rows).and_then(|(row, rows)| row.checked_mul(rows)) else {
            return Err(r.bad(format!(
                "tensor `{name}`: dims {dims:?} do not fit {ggml_type} blocks of {}",
                ggml_type.block_size()
            )));
        };
        if offset % alignment != 0 {
            return Err(r.bad(format!("tensor `{name}`: offset {offset} is not a multiple of {alignment}")));
        }
        if offset.checked_add(byte_len).is_none_or(|end| end > data_len) {
            return Err(r.bad(format!(
                "tensor `{name}`: {byte_len} bytes at data offset {offset} run past the end of the file ({data_len} data bytes)"
            )));
        }
        tensors.push(GgufTensor { name, dims, ggml_type, offset, file_offset: data_start + offset, byte_len });
    }
    Ok(Gguf { path: path.into(), version, metadata, tensors, alignment, data_start })
}

impl GgufTensor {
    /// The tensor's dtype as this crate names it: dense types map to [`Dtype`], block types
    /// to [`Dtype::Ggml`].
    pub fn dtype(&self) -> Dtype {
        self.ggml_type.dense().unwrap_or(Dtype::Ggml(self.ggml_type))
    }

    /// The shape in row-major order (the reverse of ggml's `dims`).
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// Writes a GGUF file image in memory (for tests): metadata of every type, tensors given as
/// (name, dims, type, bytes), aligned to 32. The streaming, atomic writer is
/// [`crate::gguf_write::GgufWriter`]; both share [`crate::gguf_write::encode_header`].
pub fn encode(metadata: &[(&str, MetaValue)], tensors: &[(&str, &[u64], GgmlType, &[u8])]) -> Vec<u8> {
    let md: Vec<(String, MetaValue)> = metadata.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect();
    let infos: Vec<crate::gguf_write::GgufTensorSpec> = tensors
        .iter()
        .map(|(name, dims, ty, bytes)| crate::gguf_write::GgufTensorSpec {
            name: (*name).to_string(),
            dims: dims.to_vec(),
            ggml_type: *ty,
            byte_len: bytes.len() as u64,
        })
        .collect();
    let mut out = crate::gguf_write::encode_header(&md, &infos);
    for (_, _, _, bytes) in tensors {
        while !(out.len() as u64).is_multiple_of(DEFAULT_ALIGNMENT) {
            out.push(0);
        }
        out.extend_from_slice(bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_bytes(bytes: &[u8]) -> Result<Gguf> {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), bytes).unwrap();
        let f = File::open(tmp.path()).unwrap();
        read(tmp.path(), &f, bytes.len() as u64)
    }

    #[test]
    fn round_trips_metadata_and_tensors() {
        let q = vec![7u8; 2 * 18];
        let f = vec![1u8; 4 * 3];
        let nested = MetaValue::Array(vec![MetaValue::Array(vec![MetaValue::I32(-1)]), MetaValue::Array(vec![])]);
        let md = [
            ("general.architecture", MetaValue::String("llama".into())),
            (
                "tokenizer.ggml.tokens",
                MetaValue::Array(vec![MetaValue::String("a".into()), MetaValue::String("b".into())]),
            ),
            ("x.nested", nested.clone()),
            ("x.f", MetaValue::F64(0.5)),
            ("x.b", MetaValue::Bool(true)),
        ];
        let bytes = encode(&md, &[("w", &[64], GgmlType::Q4_0, &q), ("v", &[3], GgmlType::F32, &f)]);
        let g = read_bytes(&bytes).unwrap();
        assert_eq!(g.get("general.architecture").and_then(MetaValue::as_str), Some("llama"));
        assert_eq!(g.get("x.nested"), Some(&nested));
        assert_eq!(g.tensors[0].byte_len, 36);
        assert_eq!(g.tensors[1].dtype(), Dtype::F32);
        assert_eq!(g.tensors[1].file_offset, g.data_start + 64);
        for cut in 0..bytes.len() {
            assert!(read_bytes(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn refuses_absurd_counts_and_types() {
        let mut bytes = encode(&[], &[]);
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(read_bytes(&bytes), Err(WeightsError::GgufAbsurd { .. })));
        let bytes = encode(&[], &[("w", &[4], GgmlType::F32, &[0; 16])]);
        let mut bad = bytes.clone();
        // The type id sits after magic, version, counts, name (8 + 1), n_dims, one dim.
        let at = 4 + 4 + 8 + 8 + 9 + 4 + 8;
        bad[at..at + 4].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(read_bytes(&bad), Err(WeightsError::GgufUnknownType { type_id: 4, .. })));
        let mut v1 = bytes.clone();
        v1[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(read_bytes(&v1), Err(WeightsError::GgufVersion { version: 1, .. })));
    }
}
