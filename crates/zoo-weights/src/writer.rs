//! Atomic, streaming output of a safetensors checkpoint folder (sharded with an index when
//! it outgrows one file), with a `zoo-manifest.json` of every file's size and SHA-256.
//!
//! Everything is written into `.NAME.zoo-tmp-PID` next to the destination (same filesystem),
//! fsync'ed, and only then renamed to the destination. A crash leaves at most that temp folder,
//! whose name says what it is; the next writer for the same destination removes it once its
//! process is gone. Dropping an unfinished writer removes its temp folder. The names, the
//! clean-up and the fsyncs are `zoo_atomic_write`'s; the folder swap is this module's.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, WeightsError, io_err};
use crate::safetensors::{TensorSpec, encode_header};

/// Default largest shard, in bytes (transformers' "5GB").
pub const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;
/// Name of the manifest written into every output folder.
pub const MANIFEST_NAME: &str = "zoo-manifest.json";

/// How an output folder is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Largest shard in bytes of tensor data; a single larger tensor gets a shard of its own.
    pub max_shard_size: u64,
    /// Replace an existing destination (the old folder is renamed away, then deleted).
    pub overwrite: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { max_shard_size: DEFAULT_MAX_SHARD_SIZE, overwrite: false }
    }
}

/// One file of an output folder, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Path relative to the output folder.
    pub path: String,
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// What [`SafetensorsWriter::finish`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    pub dest: PathBuf,
    /// Every file but the manifest, in the order written.
    pub files: Vec<FileRecord>,
    pub shards: usize,
    pub tensors: usize,
    pub tensor_bytes: u64,
}

struct OpenFile {
    name: String,
    file: File,
    hasher: Sha256,
    size: u64,
    direct: Option<Direct>,
}

/// Direct I/O for big shard files: full, aligned blocks go to the disk without being copied
/// into the page cache (on this kind of machine that copy, not the disk, was the bottleneck);
/// the unaligned tail goes through the normal handle at close. Any refusal from the
/// filesystem (no `O_DIRECT` support, alignment rules) falls back to buffered writes.
struct Direct {
    file: File,
    /// Backing storage; `start..start + DIRECT_BLOCK` is the 4 KiB-aligned staging buffer.
    storage: Vec<u8>,
    start: usize,
    filled: usize,
    /// Bytes already on disk through the direct handle (a multiple of the alignment).
    flushed: u64,
}

const DIRECT_ALIGN: usize = 4096;
const DIRECT_BLOCK: usize = 8 << 20;

impl Direct {
    fn open(path: &Path) -> Option<Direct> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let file = fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok()?;
            let storage = vec![0u8; DIRECT_BLOCK + DIRECT_ALIGN];
            let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
            if start >= DIRECT_ALIGN {
                return None;
            }
            Some(Direct { file, storage, start, filled: 0, flushed: 0 })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            None
        }
    }

    fn staged(&self) -> &[u8] {
        self.storage.get(self.start..self.start + self.filled).unwrap_or_default()
    }

    /// Write the full staging block; `Err` means "fall back to buffered writes".
    fn flush_block(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let block = self.storage.get(self.start..self.start + DIRECT_BLOCK).unwrap_or_default();
        self.file.write_all_at(block, self.flushed)?;
        self.flushed += DIRECT_BLOCK as u64;
        self.filled = 0;
        Ok(())
    }
}

impl OpenFile {
    fn create(dir: &Path, name: &str) -> Result<OpenFile> {
        let path = dir.join(name);
        let file = File::create_new(&path).map_err(io_err(&path, "create"))?;
        Ok(OpenFile { name: name.into(), file, hasher: Sha256::new(), size: 0, direct: None })
    }

    /// Like `create`, with direct I/O when the filesystem allows it (for shard files).
    fn create_large(dir: &Path, name: &str) -> Result<OpenFile> {
        let mut f = OpenFile::create(dir, name)?;
        f.direct = Direct::open(&dir.join(name));
        Ok(f)
    }

    fn write(&mut self, dir: &Path, mut bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        while let Some(d) = self.direct.as_mut() {
            if bytes.is_empty() {
                return Ok(());
            }
            let n = (DIRECT_BLOCK - d.filled).min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            if let Some(dst) = d.storage.get_mut(d.start + d.filled..d.start + d.filled + n) {
                dst.copy_from_slice(now);
            }
            d.filled += n;
            bytes = rest;
            if d.filled == DIRECT_BLOCK && d.flush_block().is_err() {
                // The filesystem refused direct I/O: continue buffered from the staged bytes.
                self.fall_back(dir)?;
            }
        }
        self.file.write_all(bytes).map_err(io_err(dir.join(&self.name), "write"))
    }

    /// Leave direct I/O: the staged bytes go through the buffered handle at the right offset.
    fn fall_back(&mut self, dir: &Path) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        if let Some(d) = self.direct.take() {
            let path = dir.join(&self.name);
            self.file.seek(SeekFrom::Start(d.flushed)).map_err(io_err(&path, "seek"))?;
            let staged = if d.filled == DIRECT_BLOCK {
                d.storage.get(d.start..d.start + DIRECT_BLOCK).unwrap_or_default()
            } else {
                d.staged()
            };
            self.file.write_all(staged).map_err(io_err(&path, "write"))?;
        }
        Ok(())
    }

    fn close(mut self, dir: &Path) -> Result<FileRecord> {
        self.fall_back(dir)?;
        self.file.sync_all().map_err(io_err(dir.join(&self.name), "fsync"))?;
        Ok(FileRecord { path: self.name, size: self.size, sha256: hex(&self.hasher.finalize()) })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams tensors, in a fixed order announced up front, into an atomically published folder.
///
/// Call [`write`](Self::write) with the tensors' bytes back to back (any chunking, across
/// tensor boundaries too), add side files with [`add_file`](Self::add_file), then
/// [`finish`](Self::finish).
pub struct SafetensorsWriter {
    dest: PathBuf,
    tmp: PathBuf,
    overwrite: bool,
    specs: Vec<TensorSpec>,
    lens: Vec<u64>,
    /// Shard of each tensor.
    shard_of: Vec<usize>,
    shard_names: Vec<String>,
    cur_tensor: usize,
    cur_remaining: u64,
    open: Option<(usize, OpenFile)>,
    records: Vec<FileRecord>,
    finished: bool,
}

impl std::fmt::Debug for SafetensorsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsWriter").field("dest", &self.dest).field("tmp", &self.tmp).finish()
    }
}

// The naming and clean-up of temp folders are the workspace's one atomic-write helper's; the
// binary reaches them through this module.
pub use zoo_atomic_write::{remove_stale, temp_name};

fn sync_dir(dir: &Path) -> Result<()> {
    Ok(zoo_atomic_write::sync_dir(dir)?)
}

/// Splits tensors (by byte length, in order) into shards of at most `max` bytes; a tensor
/// larger than `max` gets a shard of its own.
pub fn plan_shards(lens: &[u64], max: u64) -> Vec<usize> {
    let mut shard_of = Vec::with_capacity(lens.len());
    let mut shard = 0usize;
    let mut size = 0u64;
    let mut count = 0usize;
    for &len in lens {
        if count > 0 && size.saturating_add(len) > max {
            shard += 1;
            size = 0;
            count = 0;
        }
        size = size.saturating_add(len);
        count += 1;
        shard_of.push(shard);
    }
    shard_of
}

impl SafetensorsWriter {
    /// Prepares the temp folder for `dest` and the shard layout of `specs` (in this order).
    /// Fails early if `dest` exists and `options.overwrite` is off.
    pub fn create(dest: &Path, specs: Vec<TensorSpec>, options: &WriteOptions) -> Result<SafetensorsWriter> {
        if dest.exists() && !options.overwrite {
            return Err(WeightsError::DestinationExists { path: dest.into() });
        }
        let Some(tmp) = temp_name(dest, std::process::id()) else {
            return Err(WeightsError::InvalidOutput { reason: format!("{} has no folder name", dest.display()) });
        };
        let mut lens = Vec::with_capacity(specs.len());
        let mut names = std::collections::HashSet::with_capacity(specs.len());
        for s in &specs {
            let Some(len) = s.byte_len() else {
                return Err(WeightsError::UnsupportedDtype {
                    tensor: s.name.clone(),
                    dtype: s.dtype,
                    op: "safetensors output",
                });
            };
            if !names.insert(s.name.as_str()) || s.name == "__metadata__" {
                return Err(WeightsError::InvalidOutput { reason: format!("tensor name `{}` used twice", s.name) });
            }
            lens.push(len);
        }
        let shard_of = plan_shards(&lens, options.max_shard_size.max(1));
        let n = shard_of.last().map_or(1, |s| s + 1);
        let shard_names = if n == 1 {
            vec!["model.safetensors".to_string()]
        } else {
            (1..=n).map(|i| format!("model-{i:05}-of-{n:05}.safetensors")).collect()
        };
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err(parent, "create folder"))?;
        }
        remove_stale(dest);
        fs::create_dir(&tmp).map_err(io_err(&tmp, "create folder"))?;
        let mut w = SafetensorsWriter {
            dest: dest.into(),
            tmp,
            overwrite: options.overwrite,
            specs,
            lens,
            shard_of,
            shard_names,
            cur_tensor: 0,
            cur_remaining: 0,
            open: None,
            records: Vec::new(),
            finished: false,
        };
        w.open_shard(0)?;
        w.cur_remaining = w.lens.first().copied().unwrap_or(0);
        w.settle()?;
        Ok(w)
    }

    /// The temp folder being written.
    pub fn temp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Total bytes of tensor data expected.
    pub fn tensor_bytes(&self) -> u64 {
        self.lens.iter().fold(0, |a, &l| a.saturating_add(l))
    }

    fn open_shard(&mut self, shard: usize) -> Result<()> {
        if let Some((_, f)) = self.open.take() {
            self.records.push(f.close(&self.tmp)?);
        }
        let name = self.shard_names.get(shard).cloned().unwrap_or_default();
        let specs: Vec<TensorSpec> =
            self.specs.iter().zip(&self.shard_of).filter(|(_, s)| **s == shard).map(|(t, _)| t.clone()).collect();
        let header = encode_header(&specs, &[("format", "pt")])?;
        let mut f = OpenFile::create_large(&self.tmp, &name)?;
        f.write(&self.tmp, &header)?;
        self.open = Some((shard, f));
        Ok(())
    }

    /// Moves past finished (and empty) tensors, opening the next shard when one begins.
    fn settle(&mut self) -> Result<()> {
        while self.cur_remaining == 0 && self.cur_tensor < self.specs.len() {
            self.cur_tensor += 1;
            self.cur_remaining = self.lens.get(self.cur_tensor).copied().unwrap_or(0);
            if let Some(&shard) = self.shard_of.get(self.cur_tensor)
                && self.open.as_ref().is_none_or(|(s, _)| *s != shard)
            {
                self.open_shard(shard)?;
            }
        }
        Ok(())
    }

    /// Appends tensor bytes in the announced order.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.cur_tensor >= self.specs.len() {
                return Err(WeightsError::InvalidOutput {
                    reason: format!("{} bytes written past the last tensor", data.len()),
                });
            }
            let n = (self.cur_remaining.min(data.len() as u64)) as usize;
            let (now, rest) = data.split_at(n);
            if let Some((_, f)) = self.open.as_mut() {
                f.write(&self.tmp, now)?;
            }
            self.cur_remaining -= n as u64;
            data = rest;
            self.settle()?;
        }
        Ok(())
    }

    /// Copies a side file (config, tokenizer) into the output under `name`.
    pub fn add_file(&mut self, name: &str, src: &Path) -> Result<()> {
        check_plain_name(name)?;
        let mut input = File::open(src).map_err(io_err(src, "open"))?;
        let mut out = OpenFile::create(&self.tmp, name)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut input, &mut buf).map_err(io_err(src, "read"))?;
            if n == 0 {
                break;
            }
            out.write(&self.tmp, buf.get(..n).unwrap_or_default())?;
        }
        self.records.push(out.close(&self.tmp)?);
        Ok(())
    }

    /// Writes a side file from memory.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        check_plain_name(name)?;
        let mut out = OpenFile::create(&self.tmp, name)?;
        out.write(&self.tmp, bytes)?;
        self.records.push(out.close(&self.tmp)?);
        Ok(())
    }

    /// Checks that every tensor was written, writes the index (when sharded) and the
    /// manifest, fsyncs, and renames the folder into place.
    pub fn finish(mut self) -> Result<WriteReport> {
        self.settle()?;
        if let Some(t) = self.specs.get(self.cur_tensor) {
            return Err(WeightsError::InvalidOutput {
                reason: format!("tensor `{}` is missing {} bytes", t.name, self.cur_remaining),
            });
        }
        if let Some((_, f)) = self.open.take() {
            self.records.push(f.close(&self.tmp)?);
        }
        let tensor_bytes = self.tensor_bytes();
        if self.shard_names.len() > 1 {
            let mut map = serde_json::Map::new();
            let mut order: Vec<usize> = (0..self.specs.len()).collect();
            order.sort_by(|&a, &b| {
                let name = |i: usize| self.specs.get(i).map(|s| s.name.as_str()).unwrap_or_default();
                name(a).cmp(name(b))
            });
            for i in order {
                if let (Some(s), Some(&shard)) = (self.specs.get(i), self.shard_of.get(i)) {
                    let file = self.shard_names.get(shard).cloned().unwrap_or_default();
                    map.insert(s.name.clone(), serde_json::Value::String(file));
                }
            }
            let index = serde_json::json!({
                "metadata": { "total_size": tensor_bytes },
                "weight_map": map,
            });
            let text = serde_json::to_string_pretty(&index).unwrap_or_default() + "\n";
            self.add_bytes("model.safetensors.index.json", text.as_bytes())?;
        }
        let files: Vec<serde_json::Value> = self
            .records
            .iter()
            .map(|r| serde_json::json!({ "path": r.path, "size": r.size, "sha256": r.sha256 }))
            .collect();
        let manifest = serde_json::json!({
            "format": "zoo-manifest/1",
            "tensors": self.specs.len(),
            "tensor_bytes": tensor_bytes,
            "files": files,
        });
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
        let mut m = OpenFile::create(&self.tmp, MANIFEST_NAME)?;
        m.write(&self.tmp, text.as_bytes())?;
        m.close(&self.tmp)?;
        sync_dir(&self.tmp)?;
        self.publish()?;
        self.finished = true;
        Ok(WriteReport {
            dest: self.dest.clone(),
            files: std::mem::take(&mut self.records),
            shards: self.shard_names.len(),
            tensors: self.specs.len(),
            tensor_bytes,
        })
    }

    fn publish(&mut self) -> Result<()> {
        let parent = match self.dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if self.dest.exists() {
            if !self.overwrite {
                return Err(WeightsError::DestinationExists { path: self.dest.clone() });
            }
            let Some(old) = zoo_atomic_write::old_name(&self.dest, std::process::id()) else {
                return Err(WeightsError::InvalidOutput {
                    reason: format!("{} has no folder name", self.dest.display()),
                });
            };
            fs::rename(&self.dest, &old).map_err(io_err(&self.dest, "move aside"))?;
            if let Err(e) = fs::rename(&self.tmp, &self.dest) {
                // Put the old folder back so the destination is never left missing.
                let _ = fs::rename(&old, &self.dest);
                return Err(WeightsError::Io { path: self.dest.clone(), op: "rename into place", source: e });
            }
            sync_dir(&parent)?;
            fs::remove_dir_all(&old).map_err(io_err(&old, "remove old copy"))?;
        } else {
            fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.dest, "rename into place"))?;
            sync_dir(&parent)?;
        }
        Ok(())
    }
}

fn check_plain_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && name != MANIFEST_NAME;
    if plain {
        Ok(())
    } else {
        Err(WeightsError::InvalidOutput { reason: format!("`{name}` is not a plain file name") })
    }
}

impl Drop for SafetensorsWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::dtype::Dtype;

    fn spec(name: &str, n: u64) -> TensorSpec {
        TensorSpec { name: name.into(), dtype: Dtype::U8, shape: vec![n] }
    }

    #[test]
    fn plans_shards_like_transformers() {
        assert_eq!(plan_shards(&[3, 3, 3], 6), [0, 0, 1]);
        assert_eq!(plan_shards(&[10, 1, 1], 6), [0, 1, 1]);
        assert_eq!(plan_shards(&[1, 10, 1], 6), [0, 1, 2]);
        assert_eq!(plan_shards(&[0, 0], 6), [0, 0]);
    }

    #[test]
    fn writes_sharded_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let specs = vec![spec("a", 4), spec("empty", 0), spec("b", 9), spec("c", 2)];
        let opts = WriteOptions { max_shard_size: 8, overwrite: false };
        let mut w = SafetensorsWriter::create(&dest, specs, &opts).unwrap();
        let data: Vec<u8> = (0..15).collect();
        w.write(&data[..3]).unwrap();
        w.write(&data[3..11]).unwrap();
        w.write(&data[11..]).unwrap();
        w.add_bytes("config.json", b"{}").unwrap();
        let r = w.finish().unwrap();
        assert_eq!(r.shards, 3);
        let ck = Checkpoint::open(&dest).unwrap();
        let names: Vec<_> = ck.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "empty", "b", "c"]);
        assert_eq!(ck.read_to_vec(ck.get("b").unwrap(), 100).unwrap(), &data[4..13]);
        let manifest: serde_json::Value = serde_json::from_slice(&fs::read(dest.join(MANIFEST_NAME)).unwrap()).unwrap();
        assert_eq!(manifest["files"].as_array().unwrap().len(), 5);
        // No temp folder left, and a second run refuses the existing destination.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let again = SafetensorsWriter::create(&dest, vec![], &WriteOptions::default());
        assert!(matches!(again, Err(WeightsError::DestinationExists { .. })));
    }

    #[test]
    fn unfinished_writer_leaves_nothing_and_overwrite_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let mut w = SafetensorsWriter::create(&dest, vec![spec("a", 4)], &WriteOptions::default()).unwrap();
        w.write(&[1, 2]).unwrap();
        assert!(w.temp_dir().exists());
        drop(w);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut w = SafetensorsWriter::create(&dest, vec![spec("a", 1)], &WriteOptions::default()).unwrap();
        assert!(w.write(&[1, 2]).is_err());
        drop(w);
        let w = SafetensorsWriter::create(&dest, vec![spec("a", 1)], &WriteOptions::default()).unwrap();
        assert!(matches!(w.finish(), Err(WeightsError::InvalidOutput { .. })));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("stale"), b"x").unwrap();
        let opts = WriteOptions { overwrite: true, ..WriteOptions::default() };
        let mut w = SafetensorsWriter::create(&dest, vec![spec("a", 1)], &opts).unwrap();
        w.write(&[7]).unwrap();
        w.finish().unwrap();
        assert!(!dest.join("stale").exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temp_folders_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        // pid_max on Linux is at most 2^22, so this pid cannot be running.
        let stale = temp_name(&dest, 4_999_999).unwrap();
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join("model.safetensors"), b"half").unwrap();
        let w = SafetensorsWriter::create(&dest, vec![], &WriteOptions::default()).unwrap();
        assert!(!stale.exists());
        w.finish().unwrap();
        assert!(dest.join("model.safetensors").exists());
    }
}
