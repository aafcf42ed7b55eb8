//! Streaming, atomic GGUF v3 output: the header (metadata of every value type and the tensor
//! infos, whose offsets follow from the sizes announced up front) is written first, then the
//! tensor bytes are streamed in order with 32-byte alignment padding inserted between tensors.
//!
//! Everything goes to `.NAME.zoo-tmp-PID` in the destination's folder, is fsync'ed, and only
//! then renamed onto the destination (a `zoo_atomic_write::AtomicFile`); dropping an unfinished
//! writer removes the temp file.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zoo_atomic_write::AtomicFile;

use crate::dtype::GgmlType;
use crate::error::{Result, WeightsError, io_err};
use crate::gguf::{DEFAULT_ALIGNMENT, MetaValue};

/// One tensor to be written: its name, ggml-order dims (`dims[0]` innermost), type and the
/// exact number of data bytes that will follow.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorSpec {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub byte_len: u64,
}

/// What [`GgufWriter::finish`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufWriteReport {
    pub dest: PathBuf,
    pub size: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    pub tensors: usize,
}

fn type_of(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U8(_) => 0,
        MetaValue::I8(_) => 1,
        MetaValue::U16(_) => 2,
        MetaValue::I16(_) => 3,
        MetaValue::U32(_) => 4,
        MetaValue::I32(_) => 5,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
        MetaValue::U64(_) => 10,
        MetaValue::I64(_) => 11,
        MetaValue::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_val(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(items) => {
            // An empty array has no element to take the type from; gguf-py writes it as u8.
            out.extend_from_slice(&items.first().map_or(0, type_of).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_val(out, i);
            }
        }
        MetaValue::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn padded(len: u64) -> u64 {
    len.div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT
}

/// The GGUF v3 header for `metadata` and `tensors` (offsets assigned in order, each tensor
/// starting on a 32-byte boundary of the data section), not yet padded to the data section.
pub fn encode_header(metadata: &[(String, MetaValue)], tensors: &[GgufTensorSpec]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend_from_slice(&type_of(v).to_le_bytes());
        put_val(&mut out, v);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.id().to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset += padded(t.byte_len);
    }
    out
}

/// Streams one GGUF file into place atomically.
///
/// Announce every tensor in [`create`](Self::create), then [`write`](Self::write) their bytes
/// back to back (any chunking), then [`finish`](Self::finish).
pub struct GgufWriter {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<AtomicFile>>,
    hasher: Sha256,
    size: u64,
    specs: Vec<GgufTensorSpec>,
    cur: usize,
    remaining: u64,
    overwrite: bool,
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter").field("dest", &self.dest).field("tmp", &self.tmp).finish()
    }
}

impl GgufWriter {
    /// Checks the tensor list (unique names, byte lengths that fit the dims and type), writes the
    /// header to the temp file, and is then ready for tensor bytes.
    pub fn create(
        dest: &Path,
        metadata: &[(String, MetaValue)],
        specs: Vec<GgufTensorSpec>,
        overwrite: bool,
    ) -> Result<GgufWriter> {
        if dest.exists() && !overwrite {
            return Err(WeightsError::DestinationExists { path: dest.into() });
        }
        let Some(tmp) = crate::writer::temp_name(dest, std::process::id()) else {
            return Err(WeightsError::InvalidOutput { reason: format!("{} has no file name", dest.display()) });
        };
        let mut names = std::collections::HashSet::with_capacity(specs.len());
        for s in &specs {
            if !names.insert(s.name.as_str()) {
                return Err(WeightsError::InvalidOutput { reason: format!("tensor name `{}` used twice", s.name) });
            }
            let inner = s.dims.first().copied().unwrap_or(1);
            let rows = s.dims.iter().skip(1).try_fold(1u64, |a, &d| a.checked_mul(d));
            let want = s.ggml_type.byte_size(inner).zip(rows).and_then(|(r, n)| r.checked_mul(n));
            if want != Some(s.byte_len) {
                return Err(WeightsError::InvalidOutput {
                    reason: format!(
                        "tensor `{}`: dims {:?} of {} need {want:?} bytes, {} announced",
                        s.name, s.dims, s.ggml_type, s.byte_len
                    ),
                });
            }
        }
        // Also removes the temp files of killed runs (`kill -9`) for this destination.
        let file = AtomicFile::create(dest)?;
        let mut w = GgufWriter {
            dest: dest.into(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            hasher: Sha256::new(),
            size: 0,
            specs,
            cur: 0,
            remaining: 0,
            overwrite,
        };
        let header = encode_header(metadata, &w.specs);
        w.raw(&header)?;
        w.pad()?;
        w.remaining = w.specs.first().map_or(0, |s| s.byte_len);
        w.settle()?;
        Ok(w)
    }

    fn raw(&mut self, data: &[u8]) -> Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.write_all(data).map_err(io_err(&self.tmp, "write"))?;
        }
        self.hasher.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let n = (padded(self.size) - self.size) as usize;
        self.raw(&vec![0u8; n])
    }

    /// Moves past finished (and empty) tensors, padding to the next tensor's alignment.
    fn settle(&mut self) -> Result<()> {
        while self.remaining == 0 && self.cur < self.specs.len() {
            self.cur += 1;
            if let Some(len) = self.specs.get(self.cur).map(|s| s.byte_len) {
                self.pad()?;
                self.remaining = len;
            }
        }
        Ok(())
    }

    /// Appends tensor bytes in the announced order.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.cur >= self.specs.len() {
                return Err(WeightsError::InvalidOutput {
                    reason: format!("{} bytes written past the last tensor", data.len()),
                });
            }
            let n = self.remaining.min(data.len() as u64) as usize;
            let (now, rest) = data.split_at(n);
            self.raw(now)?;
            self.remaining -= n as u64;
            data = rest;
            self.settle()?;
        }
        Ok(())
    }

    /// Checks every tensor was written, fsyncs, and renames the file into place.
    pub fn finish(mut self) -> Result<GgufWriteReport> {
        self.settle()?;
        if let Some(t) = self.specs.get(self.cur) {
            return Err(WeightsError::InvalidOutput {
                reason: format!("tensor `{}` is missing {} bytes", t.name, self.remaining),
            });
        }
        let Some(out) = self.out.take() else {
            return Err(WeightsError::InvalidOutput {
                reason: format!("{} was already finished", self.dest.display()),
            });
        };
        let file = out.into_inner().map_err(|e| WeightsError::Io {
            path: self.tmp.clone(),
            op: "write",
            source: e.into_error(),
        })?;
        if self.dest.is_dir() {
            return Err(WeightsError::InvalidOutput { reason: format!("{} is a folder", self.dest.display()) });
        }
        if self.dest.exists() && !self.overwrite {
            return Err(WeightsError::DestinationExists { path: self.dest.clone() });
        }
        file.commit()?;
        let sha256 = self.hasher.clone().finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(GgufWriteReport { dest: self.dest.clone(), size: self.size, sha256, tensors: self.specs.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Checkpoint;

    fn every_type() -> Vec<(String, MetaValue)> {
        let v = [
            ("a.u8", MetaValue::U8(200)),
            ("a.i8", MetaValue::I8(-5)),
            ("a.u16", MetaValue::U16(60000)),
            ("a.i16", MetaValue::I16(-300)),
            ("a.u32", MetaValue::U32(4_000_000_000)),
            ("a.i32", MetaValue::I32(-70000)),
            ("a.f32", MetaValue::F32(1e-6)),
            ("a.bool", MetaValue::Bool(true)),
            ("a.str", MetaValue::String("héllo".into())),
            ("a.u64", MetaValue::U64(u64::MAX)),
            ("a.i64", MetaValue::I64(i64::MIN)),
            ("a.f64", MetaValue::F64(-0.25)),
            ("a.arr", MetaValue::Array(vec![MetaValue::String("x".into()), MetaValue::String("y z".into())])),
            ("a.nested", MetaValue::Array(vec![MetaValue::Array(vec![MetaValue::I32(1)]), MetaValue::Array(vec![])])),
            ("a.empty", MetaValue::Array(vec![])),
        ];
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn streamed_file_reads_back_with_every_metadata_type() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m.gguf");
        let md = every_type();
        let q = (0..3 * 18).map(|i| i as u8).collect::<Vec<u8>>();
        let f: Vec<u8> = [1.5f32, -2.0, 3.25].iter().flat_map(|x| x.to_le_bytes()).collect();
        let specs = vec![
            GgufTensorSpec { name: "w".into(), dims: vec![32, 3], ggml_type: GgmlType::Q4_0, byte_len: 54 },
            GgufTensorSpec { name: "empty".into(), dims: vec![0], ggml_type: GgmlType::F32, byte_len: 0 },
            GgufTensorSpec { name: "v".into(), dims: vec![3], ggml_type: GgmlType::F32, byte_len: 12 },
        ];
        let mut w = GgufWriter::create(&dest, &md, specs, false).unwrap();
        // Chunks that cross tensor boundaries.
        let all: Vec<u8> = q.iter().chain(&f).copied().collect();
        for c in all.chunks(7) {
            w.write(c).unwrap();
        }
        let report = w.finish().unwrap();
        assert_eq!(report.size, std::fs::metadata(&dest).unwrap().len());
        let ck = Checkpoint::open(&dest).unwrap();
        let g = ck.gguf().unwrap();
        assert_eq!(g.metadata, md);
        assert_eq!(g.tensors.iter().map(|t| t.offset).collect::<Vec<_>>(), [0, 64, 64]);
        assert_eq!(ck.read_to_vec(ck.get("w").unwrap(), 1 << 20).unwrap(), q);
        assert_eq!(ck.read_to_vec(ck.get("v").unwrap(), 1 << 20).unwrap(), f);
        assert_eq!(ck.get("w").unwrap().shape, [3, 32]);
        // The in-memory encoder gives the same bytes.
        let mem = crate::gguf::encode(
            &md.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>(),
            &[("w", &[32, 3], GgmlType::Q4_0, &q), ("empty", &[0], GgmlType::F32, &[]), ("v", &[3], GgmlType::F32, &f)],
        );
        assert_eq!(std::fs::read(&dest).unwrap(), mem);
        assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "temp file left behind");
    }

    #[test]
    fn temp_files_of_killed_runs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m.gguf");
        let stale = crate::writer::temp_name(&dest, 4_999_999).unwrap();
        std::fs::write(&stale, b"half a gguf").unwrap();
        let specs = vec![GgufTensorSpec { name: "v".into(), dims: vec![3], ggml_type: GgmlType::F32, byte_len: 12 }];
        let w = GgufWriter::create(&dest, &[], specs, false).unwrap();
        assert!(!stale.exists(), "a dead process's temp file is swept");
        drop(w);
    }

    #[test]
    fn wrong_sizes_and_unfinished_writes_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m.gguf");
        let bad = vec![GgufTensorSpec { name: "w".into(), dims: vec![33], ggml_type: GgmlType::Q8_0, byte_len: 34 }];
        assert!(GgufWriter::create(&dest, &[], bad, false).is_err());
        let specs = vec![GgufTensorSpec { name: "v".into(), dims: vec![3], ggml_type: GgmlType::F32, byte_len: 12 }];
        let mut w = GgufWriter::create(&dest, &[], specs.clone(), false).unwrap();
        w.write(&[0; 8]).unwrap();
        assert!(w.write(&[0; 8]).is_err());
        drop(w);
        let mut w = GgufWriter::create(&dest, &[], specs, false).unwrap();
        w.write(&[0; 4]).unwrap();
        assert!(w.finish().is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
