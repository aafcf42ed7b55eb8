//! PyTorch `torch.save` checkpoints (the zip format of torch >= 1.6): locate each tensor's
//! bytes without loading them.
//!
//! The archive holds `<prefix>/data.pkl` (the state dict, pickled) and one stored entry
//! `<prefix>/data/<key>` per storage. The pickle is read as data by [`crate::pickle`]; each
//! tensor becomes a byte range inside its storage's entry.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::checkpoint::RawTensor;
use crate::dtype::numel;
use crate::error::{Result, WeightsError, io_err};
use crate::pickle::{self, TensorRef, Value};
use crate::zip::Archive;

/// Largest `data.pkl` read (the pickle of a 70B shard is well under a megabyte).
const MAX_PICKLE: u64 = 64 << 20;
/// Nested dicts (`{"model": {...}}`) are flattened this deep.
const MAX_NESTING: usize = 4;

/// True if the first bytes look like a legacy (pre-1.6) `torch.save` stream: a bare pickle.
pub fn is_legacy_pickle(head: &[u8]) -> bool {
    head.first() == Some(&0x80) && head.get(1).is_some_and(|&p| p <= 5)
}

/// Lists the tensors of a torch zip checkpoint, in state-dict order.
pub fn read_tensors(path: &Path, file: &File, file_len: u64) -> Result<Vec<RawTensor>> {
    let mut head = [0u8; 4];
    let n = file_len.min(4) as usize;
    file.read_exact_at(head.get_mut(..n).unwrap_or_default(), 0).map_err(io_err(path, "read"))?;
    if is_legacy_pickle(&head) {
        return Err(WeightsError::LegacyTorch { path: path.into() });
    }
    if head != *b"PK\x03\x04" {
        return Err(WeightsError::UnknownFormat {
            path: path.into(),
            reason: "not a zip archive, so not a PyTorch >= 1.6 checkpoint".into(),
        });
    }
    let archive = Archive::open(path, file, file_len)?;
    let pkls: Vec<_> =
        archive.entries().iter().filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl")).collect();
    let pkl = match pkls.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(WeightsError::ZipEntryMissing { path: path.into(), entry: "<archive>/data.pkl".into() }),
        _ => {
            return Err(WeightsError::Zip {
                path: path.into(),
                reason: format!("{} data.pkl entries; expected one", pkls.len()),
            });
        }
    };
    let prefix = pkl.name.strip_suffix("data.pkl").unwrap_or_default().to_owned();
    if let Some(order) = archive.entry(&format!("{prefix}byteorder")) {
        let bytes = archive.read_entry(file, order, 16)?;
        if bytes != b"little" {
            return Err(WeightsError::UnknownFormat {
                path: path.into(),
                reason: format!("byte order `{}` is not supported", String::from_utf8_lossy(&bytes)),
            });
        }
    }
    let data = archive.read_entry(file, &pkl, MAX_PICKLE)?;
    let value = pickle::load(path, &data)?;
    let mut found = Vec::new();
    collect(path, &value, "", 0, &mut found)?;
    let mut seen = HashSet::with_capacity(found.len());
    let mut out = Vec::with_capacity(found.len());
    for (name, t) in found {
        if !seen.insert(name.clone()) {
            return Err(WeightsError::DuplicateTensor { tensor: name, first: path.into(), second: path.into() });
        }
        out.push(locate(path, file, &archive, &prefix, name, &t)?);
    }
    Ok(out)
}

fn collect(path: &Path, v: &Value, prefix: &str, depth: usize, out: &mut Vec<(String, TensorRef)>) -> Result<()> {
    let Value::Dict(entries, _) = v else {
        return Err(WeightsError::UnknownFormat {
            path: path.into(),
            reason: "the pickle does not hold a dict of tensors (a state dict)".into(),
        });
    };
    for (k, v) in entries.iter() {
        let key = match k {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => continue,
        };
        let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        match v {
            Value::Tensor(t) => out.push((name, (**t).clone())),
            Value::Dict(..) if depth < MAX_NESTING => collect(path, v, &name, depth + 1, out)?,
            // Other entries (epochs, hyper-parameters) carry no weights.
            _ => {}
        }
    }
    Ok(())
}

fn locate(path: &Path, file: &File, archive: &Archive, prefix: &str, name: String, t: &TensorRef) -> Result<RawTensor> {
    let bad = |reason: String| WeightsError::TorchTensor { path: path.into(), tensor: name.clone(), reason };
    let entry_name = format!("{prefix}data/{}", t.storage.key);
    let Some(entry) = archive.entry(&entry_name) else {
        return Err(WeightsError::ZipEntryMissing { path: path.into(), entry: entry_name });
    };
    let esize = t.dtype.size().unwrap_or(1);
    let Some(count) = numel(&t.shape) else {
        return Err(bad(format!("shape {:?} overflows", t.shape)));
    };
    if count > 0 && !is_contiguous(&t.shape, &t.stride) {
        return Err(WeightsError::NonContiguous {
            path: path.into(),
            tensor: name,
            shape: t.shape.clone(),
            stride: t.stride.clone(),
        });
    }
    let start = t.storage_offset.checked_mul(esize);
    let len = count.checked_mul(esize);
    let end = start.zip(len).and_then(|(s, l)| s.checked_add(l));
    let storage_bytes = t.storage.numel.checked_mul(t.storage.dtype.size().unwrap_or(1));
    let (Some(start), Some(len), Some(end), Some(storage_bytes)) = (start, len, end, storage_bytes) else {
        return Err(bad("offsets overflow".into()));
    };
    if storage_bytes > entry.size {
        return Err(bad(format!(
            "storage `{}` claims {storage_bytes} bytes but its entry holds {}",
            t.storage.key, entry.size
        )));
    }
    if end > storage_bytes {
        return Err(bad(format!(
            "bytes [{start}, {end}) run past its storage `{}` of {storage_bytes} bytes",
            t.storage.key
        )));
    }
    let base = archive.data_offset(file, entry)?;
    Ok(RawTensor { name, dtype: t.dtype, shape: t.shape.clone(), offset: base + start, byte_len: len })
}

/// Row-major contiguity, ignoring the stride of size-1 dimensions (as torch does).
fn is_contiguous(shape: &[u64], stride: &[u64]) -> bool {
    let mut expected = 1u64;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(is_contiguous(&[1, 3], &[99, 1]));
        assert!(is_contiguous(&[], &[]));
    }

    #[test]
    fn reads_a_hand_made_checkpoint() {
        let pkl = pickle::tests::state_dict_pickle("torch._utils", "_rebuild_tensor_v2");
        let data: Vec<u8> = (0..12).collect();
        let bytes = crate::zip::tests::build_zip(&[("arch/data.pkl", &pkl), ("arch/data/0", &data)], 0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pytorch_model.bin");
        std::fs::write(&p, &bytes).unwrap();
        let f = File::open(&p).unwrap();
        let ts = read_tensors(&p, &f, bytes.len() as u64).unwrap();
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].name, "w");
        assert_eq!(ts[0].byte_len, 12);
        let mut got = vec![0u8; 12];
        f.read_exact_at(&mut got, ts[0].offset).unwrap();
        assert_eq!(got, data);
        // Storage smaller than the tensor needs.
        let bytes = crate::zip::tests::build_zip(&[("arch/data.pkl", &pkl), ("arch/data/0", &data[..6])], 0);
        std::fs::write(&p, &bytes).unwrap();
        let f = File::open(&p).unwrap();
        assert!(matches!(read_tensors(&p, &f, bytes.len() as u64), Err(WeightsError::TorchTensor { .. })));
    }
}
