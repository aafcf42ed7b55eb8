//! The safetensors format: validating reader of one file's header, and the header writer.
//!
//! Layout: `u64` little-endian header length N, N bytes of JSON, then the data section.
//! The reader checks what the reference implementation checks (and a little more): the
//! header fits in the file, is a JSON object, every dtype is known, every tensor's byte count
//! is its shape times its dtype size, and the tensors tile the data section exactly (sorted by
//! offset, no overlap, no gap, nothing left over).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::checkpoint::RawTensor;
use crate::dtype::Dtype;
use crate::error::{Result, WeightsError, io_err};

/// Largest header accepted, as in the reference implementation (100 MB).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// A parsed and validated safetensors header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Tensors sorted by their position in the file.
    pub tensors: Vec<RawTensor>,
    /// The `__metadata__` string map, in key order.
    pub metadata: Vec<(String, String)>,
    /// Where the data section starts (8 + header length).
    pub data_start: u64,
}

/// Reads and validates the header of an open safetensors file of length `file_len`.
pub fn read_header(path: &Path, file: &File, file_len: u64) -> Result<Header> {
    if file_len < 8 {
        return Err(WeightsError::TooShort {
            path: path.into(),
            len: file_len,
            needed: 8,
            what: "a safetensors header length",
        });
    }
    let mut len_bytes = [0u8; 8];
    file.read_exact_at(&mut len_bytes, 0).map_err(io_err(path, "read"))?;
    let header_len = u64::from_le_bytes(len_bytes);
    let room = file_len - 8;
    if header_len > room || !(2..=MAX_HEADER_LEN).contains(&header_len) {
        return Err(WeightsError::SafetensorsHeaderLength {
            path: path.into(),
            header_len,
            file_len,
            limit: room.min(MAX_HEADER_LEN),
        });
    }
    // Bounded above by MAX_HEADER_LEN, so the allocation is safe.
    let mut json = vec![0u8; header_len as usize];
    file.read_exact_at(&mut json, 8).map_err(io_err(path, "read"))?;
    parse_header(path, &json, 8 + header_len, file_len - 8 - header_len)
}

/// Validates header JSON bytes; `data_start` is the file offset of the data section,
/// `data_len` its length.
pub fn parse_header(path: &Path, json: &[u8], data_start: u64, data_len: u64) -> Result<Header> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| WeightsError::SafetensorsHeaderJson { path: path.into(), message: e.to_string() })?;
    let serde_json::Value::Object(map) = value else {
        return Err(WeightsError::SafetensorsHeaderNotObject { path: path.into() });
    };
    let mut tensors = Vec::with_capacity(map.len());
    let mut metadata = Vec::new();
    // (begin, end) per tensor, relative to the data section.
    let mut spans = Vec::with_capacity(map.len());
    for (name, entry) in map {
        if name == "__metadata__" {
            let serde_json::Value::Object(m) = entry else {
                return Err(entry_err(path, &name, "__metadata__ is not an object"));
            };
            for (k, v) in m {
                match v {
                    serde_json::Value::String(s) => metadata.push((k, s)),
                    _ => return Err(entry_err(path, &name, "__metadata__ values must be strings")),
                }
            }
            continue;
        }
        let serde_json::Value::Object(e) = entry else {
            return Err(entry_err(path, &name, "entry is not an object"));
        };
        let dtype_name = match e.get("dtype") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => return Err(entry_err(path, &name, "missing string field `dtype`")),
        };
        let Some(dtype) = Dtype::from_safetensors_name(&dtype_name) else {
            return Err(WeightsError::UnknownDtype { path: path.into(), tensor: name, dtype: dtype_name });
        };
        let shape = match e.get("shape") {
            Some(serde_json::Value::Array(a)) => a.iter().map(|d| d.as_u64()).collect::<Option<Vec<u64>>>(),
            _ => None,
        };
        let Some(shape) = shape else {
            return Err(entry_err(path, &name, "`shape` must be an array of non-negative integers"));
        };
        let offsets = match e.get("data_offsets") {
            Some(serde_json::Value::Array(a)) if a.len() == 2 => {
                a.first().and_then(|v| v.as_u64()).zip(a.get(1).and_then(|v| v.as_u64()))
            }
            _ => None,
        };
        let Some((begin, end)) = offsets else {
            return Err(entry_err(path, &name, "`data_offsets` must be two non-negative integers"));
        };
        if begin > end || end > data_len {
            return Err(WeightsError::OffsetsOutOfRange { path: path.into(), tensor: name, begin, end, data_len });
        }
        let actual = end - begin;
        let expected = dtype.byte_size(&shape);
        if expected != Some(actual) {
            return Err(WeightsError::ByteCountMismatch {
                path: path.into(),
                tensor: name,
                dtype,
                shape,
                expected: expected.unwrap_or(u64::MAX),
                actual,
            });
        }
        spans.push((begin, end));
        tensors.push(RawTensor { name, dtype, shape, offset: data_start + begin, byte_len: actual });
    }
    // Tile check: sorted by (begin, end), each begins where the previous ended.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| spans.get(i).copied().unwrap_or_default());
    let mut covered = 0u64;
    for &i in &order {
        let (begin, end) = spans.get(i).copied().unwrap_or_default();
        if begin != covered {
            let tensor = tensors.get(i).map(|t| t.name.clone()).unwrap_or_default();
            return Err(WeightsError::OffsetsNotContiguous {
                path: path.into(),
                tensor,
                begin,
                end,
                expected_begin: covered,
            });
        }
        covered = end;
    }
    if covered != data_len {
        return Err(WeightsError::TrailingData { path: path.into(), data_len, covered });
    }
    let mut slots: Vec<Option<RawTensor>> = tensors.into_iter().map(Some).collect();
    let tensors = order.iter().filter_map(|&i| slots.get_mut(i).and_then(Option::take)).collect();
    Ok(Header { tensors, metadata, data_start })
}

fn entry_err(path: &Path, tensor: &str, reason: &str) -> WeightsError {
    WeightsError::SafetensorsEntry { path: path.into(), tensor: tensor.into(), reason: reason.into() }
}

/// One tensor to be written: name, dtype, shape (its byte size follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
}

impl TensorSpec {
    /// Bytes of data this tensor takes; `None` for block types or overflow.
    pub fn byte_len(&self) -> Option<u64> {
        match self.dtype {
            Dtype::Ggml(_) => None,
            d => d.byte_size(&self.shape),
        }
    }
}

/// Serializes a header for `tensors` laid out back to back in the given order, with
/// `__metadata__` first. Returns the full prefix: 8-byte length plus JSON padded with spaces
/// so that the data section starts on an 8-byte boundary (as the reference writer does).
pub fn encode_header(tensors: &[TensorSpec], metadata: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut json = String::from("{");
    if !metadata.is_empty() {
        json.push_str("\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&json_string(k));
            json.push(':');
            json.push_str(&json_string(v));
        }
        json.push('}');
    }
    let mut offset = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        if i > 0 || !metadata.is_empty() {
            json.push(',');
        }
        let Some(name) = t.dtype.safetensors_name() else {
            return Err(WeightsError::UnsupportedDtype {
                tensor: t.name.clone(),
                dtype: t.dtype,
                op: "safetensors output",
            });
        };
        let len = t.byte_len().ok_or_else(|| WeightsError::InvalidOutput {
            reason: format!("tensor `{}`: shape {:?} overflows", t.name, t.shape),
        })?;
        let end = offset
            .checked_add(len)
            .ok_or_else(|| WeightsError::InvalidOutput { reason: "total size overflows".into() })?;
        let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
        json.push_str(&format!(
            "{}:{{\"dtype\":\"{name}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json_string(&t.name),
            shape.join(",")
        ));
        offset = end;
    }
    json.push('}');
    let mut bytes = json.into_bytes();
    while bytes.len() % 8 != 0 {
        bytes.push(b' ');
    }
    let mut out = Vec::with_capacity(bytes.len() + 8);
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&bytes);
    Ok(out)
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str, data_len: u64) -> Result<Header> {
        parse_header(Path::new("t.safetensors"), json.as_bytes(), 8 + json.len() as u64, data_len)
    }

    #[test]
    fn sorts_by_offset_and_keeps_metadata() {
        let h = parse(
            r#"{"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},"__metadata__":{"format":"pt"},
                "a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"e":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}}"#,
            8,
        )
        .unwrap();
        let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "e"]);
        assert_eq!(h.metadata, vec![("format".to_string(), "pt".to_string())]);
    }

    #[test]
    fn refuses_gap_overlap_trailing() {
        let gap = parse(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#, 2);
        assert!(matches!(gap, Err(WeightsError::OffsetsNotContiguous { expected_begin: 0, .. })), "{gap:?}");
        let overlap = parse(
            r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}"#,
            3,
        );
        assert!(matches!(overlap, Err(WeightsError::OffsetsNotContiguous { .. })), "{overlap:?}");
        let trailing = parse(r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#, 2);
        assert!(matches!(trailing, Err(WeightsError::TrailingData { .. })), "{trailing:?}");
        let neg = parse(r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#, 1);
        assert!(matches!(neg, Err(WeightsError::SafetensorsEntry { .. })), "{neg:?}");
        let huge = parse(r#"{"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,1]}}"#, 1);
        assert!(matches!(huge, Err(WeightsError::ByteCountMismatch { .. })), "{huge:?}");
    }

    #[test]
    fn header_is_padded_and_parses_back() {
        let specs = vec![
            TensorSpec { name: "x\"y".into(), dtype: Dtype::BF16, shape: vec![3] },
            TensorSpec { name: "z".into(), dtype: Dtype::F32, shape: vec![] },
        ];
        let bytes = encode_header(&specs, &[("format", "pt")]).unwrap();
        assert_eq!(bytes.len() % 8, 0);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let h = parse_header(Path::new("t"), &bytes[8..], 8 + n, 10).unwrap();
        assert_eq!(h.tensors[0].name, "x\"y");
        assert_eq!(h.tensors[1].offset, 8 + n + 6);
    }
}
