//! One type over every checkpoint layout: a file or a folder, single or sharded, safetensors,
//! PyTorch `.bin` or GGUF. Opening reads headers only; tensor bytes are read on demand, in
//! caller-sized chunks, with positioned reads (no mapping, so nothing counts toward RSS).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use crate::dtype::Dtype;
use crate::error::{Result, WeightsError, io_err};
use crate::gguf::{self, Gguf};
use crate::{safetensors, torch};

/// Largest index JSON accepted.
const MAX_INDEX_JSON: u64 = 64 << 20;

/// A tensor located in one file of a format reader's output.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    /// Absolute offset of the first byte in the file.
    pub offset: u64,
    pub byte_len: u64,
}

/// Which layout a checkpoint has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    SafetensorsSharded,
    Torch,
    TorchSharded,
    Gguf,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::SafetensorsSharded => "safetensors (sharded)",
            Format::Torch => "pytorch",
            Format::TorchSharded => "pytorch (sharded)",
            Format::Gguf => "gguf",
        }
    }
}

/// One tensor of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    /// Row-major shape (for GGUF, the reverse of ggml's `ne`).
    pub shape: Vec<u64>,
    pub byte_len: u64,
    /// The file holding the bytes.
    pub file: PathBuf,
    /// Absolute offset of the first byte in `file`.
    pub offset: u64,
    /// Index into [`Checkpoint::files`].
    pub file_index: usize,
}

/// An opened checkpoint: tensor list plus open file handles.
#[derive(Debug)]
pub struct Checkpoint {
    format: Format,
    folder: PathBuf,
    files: Vec<PathBuf>,
    handles: Vec<File>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    metadata: Vec<(String, String)>,
    gguf: Option<Gguf>,
}

/// Names tried, in order, when a folder is given.
const FOLDER_CANDIDATES: &[&str] =
    &["model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin"];

fn open_file(path: &Path) -> Result<(File, u64)> {
    let f = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => WeightsError::NotFound { path: path.into() },
        _ => WeightsError::Io { path: path.into(), op: "open", source: e },
    })?;
    let meta = f.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(WeightsError::UnknownFormat { path: path.into(), reason: "not a regular file".into() });
    }
    Ok((f, meta.len()))
}

/// Kind of a single (non-index) file, from its first bytes.
enum Kind {
    Safetensors,
    Torch,
    Gguf,
}

fn sniff(path: &Path, file: &File, len: u64) -> Result<Kind> {
    if len == 0 {
        return Err(WeightsError::TooShort { path: path.into(), len, needed: 8, what: "a checkpoint (empty file)" });
    }
    let mut head = [0u8; 9];
    let n = len.min(9) as usize;
    file.read_exact_at(head.get_mut(..n).unwrap_or_default(), 0).map_err(io_err(path, "read"))?;
    if head.starts_with(b"GGUF") {
        return Ok(Kind::Gguf);
    }
    if head.starts_with(b"PK\x03\x04") {
        return Ok(Kind::Torch);
    }
    // Safetensors: a plausible header length followed by `{`. Checked before the pickle
    // test, since a header length may well start with byte 0x80.
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(head.get(..8).unwrap_or(&[0; 8]));
    let header_len = u64::from_le_bytes(len_bytes);
    if len >= 10 && head.get(8) == Some(&b'{') && header_len <= len - 8 {
        return Ok(Kind::Safetensors);
    }
    if torch::is_legacy_pickle(&head) {
        return Ok(Kind::Torch);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    match ext {
        "gguf" => Ok(Kind::Gguf),
        "bin" | "pt" | "pth" | "ckpt" => Ok(Kind::Torch),
        _ => Ok(Kind::Safetensors),
    }
}

impl Checkpoint {
    /// Opens a checkpoint file, an index JSON, or a folder holding one checkpoint.
    ///
    /// In a folder the first present of `model.safetensors.index.json`, `model.safetensors`,
    /// `pytorch_model.bin.index.json`, `pytorch_model.bin` is used (safetensors win when a
    /// repository ships both); otherwise a single `*.safetensors.index.json`, `*.safetensors`,
    /// `*.bin.index.json`, `*.bin` or `*.gguf` file, tried in that order.
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => WeightsError::NotFound { path: path.into() },
            _ => WeightsError::Io { path: path.into(), op: "stat", source: e },
        })?;
        if meta.is_dir() {
            let file = Self::pick_in_folder(path)?;
            return Self::open_file(&file);
        }
        Self::open_file(path)
    }

    fn pick_in_folder(dir: &Path) -> Result<PathBuf> {
        for name in FOLDER_CANDIDATES {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir, "list"))? {
            let entry = entry.map_err(io_err(dir, "list"))?;
            if entry.path().is_file()
                && let Some(n) = entry.file_name().to_str()
            {
                names.push(n.to_owned());
            }
        }
        names.sort();
        for suffix in [".safetensors.index.json", ".safetensors", ".bin.index.json", ".bin", ".gguf"] {
            let found: Vec<&String> = names.iter().filter(|n| n.ends_with(suffix)).collect();
            match found.as_slice() {
                [] => continue,
                [one] => return Ok(dir.join(one)),
                // Several shards without an index, or several models: refuse rather than
                // guess an order or a subset.
                many => {
                    return Err(WeightsError::AmbiguousCheckpoint {
                        path: dir.into(),
                        candidates: many.iter().map(|s| s.to_string()).collect(),
                    });
                }
            }
        }
        Err(WeightsError::NoCheckpoint {
            path: dir.into(),
            looked_for: "*.safetensors, *.safetensors.index.json, *.bin, *.bin.index.json, *.gguf".into(),
        })
    }

    fn open_file(path: &Path) -> Result<Checkpoint> {
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".index.json") {
            return Self::open_index(path, &folder);
        }
        let (file, len) = open_file(path)?;
        let mut ck = Checkpoint {
            format: Format::Safetensors,
            folder,
            files: Vec::new(),
            handles: Vec::new(),
            tensors: Vec::new(),
            by_name: HashMap::new(),
            metadata: Vec::new(),
            gguf: None,
        };
        match sniff(path, &file, len)? {
            Kind::Gguf => {
                let g = gguf::read(path, &file, len)?;
                let raws = g
                    .tensors
                    .iter()
                    .map(|t| RawTensor {
                        name: t.name.clone(),
                        dtype: t.dtype(),
                        shape: t.shape(),
                        offset: t.file_offset,
                        byte_len: t.byte_len,
                    })
                    .collect();
                ck.format = Format::Gguf;
                ck.add_file(path, file, raws)?;
                ck.gguf = Some(g);
            }
            Kind::Torch => {
                let raws = torch::read_tensors(path, &file, len)?;
                ck.format = Format::Torch;
                ck.add_file(path, file, raws)?;
            }
            Kind::Safetensors => {
                let h = safetensors::read_header(path, &file, len)?;
                ck.metadata = h.metadata;
                ck.add_file(path, file, h.tensors)?;
            }
        }
        Ok(ck)
    }

    fn add_file(&mut self, path: &Path, file: File, raws: Vec<RawTensor>) -> Result<()> {
        let file_index = self.files.len();
        self.by_name.reserve(raws.len());
        self.tensors.reserve(raws.len());
        for r in raws {
            if let Some(&i) = self.by_name.get(&r.name) {
                let first = self.tensors.get(i).map(|t| t.file.clone()).unwrap_or_default();
                return Err(WeightsError::DuplicateTensor { tensor: r.name, first, second: path.into() });
            }
            self.by_name.insert(r.name.clone(), self.tensors.len());
            self.tensors.push(TensorInfo {
                name: r.name,
                dtype: r.dtype,
                shape: r.shape,
                byte_len: r.byte_len,
                file: path.into(),
                offset: r.offset,
                file_index,
            });
        }
        self.files.push(path.into());
        self.handles.push(file);
        Ok(())
    }

    fn open_index(index: &Path, folder: &Path) -> Result<Checkpoint> {
        let bad = |reason: String| WeightsError::BadIndex { path: index.into(), reason };
        let (file, len) = open_file(index)?;
        if len > MAX_INDEX_JSON {
            return Err(bad(format!("{len} bytes is too large for an index")));
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0).map_err(io_err(index, "read"))?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let Some(map) = json.get("weight_map").and_then(|m| m.as_object()) else {
            return Err(bad("no `weight_map` object".into()));
        };
        let mut wanted: Vec<(String, String)> = Vec::with_capacity(map.len());
        for (tensor, shard) in map {
            let Some(shard) = shard.as_str() else {
                return Err(bad(format!("tensor `{tensor}`: shard is not a string")));
            };
            wanted.push((tensor.clone(), shard.to_owned()));
        }
        let shards: BTreeSet<&str> = wanted.iter().map(|(_, s)| s.as_str()).collect();
        let root = std::fs::canonicalize(if folder.as_os_str().is_empty() { Path::new(".") } else { folder })
            .map_err(io_err(folder, "resolve"))?;
        let mut ck = Checkpoint {
            format: Format::SafetensorsSharded,
            folder: folder.into(),
            files: Vec::new(),
            handles: Vec::new(),
            tensors: Vec::new(),
            by_name: HashMap::new(),
            metadata: Vec::new(),
            gguf: None,
        };
        let mut any_torch = false;
        let mut any_st = false;
        for shard in &shards {
            let rel = Path::new(shard);
            let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
            if !plain || shard.is_empty() {
                return Err(WeightsError::ShardOutsideFolder { index: index.into(), shard: (*shard).into() });
            }
            let path = folder.join(rel);
            let real = match std::fs::canonicalize(&path) {
                Ok(p) => p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(WeightsError::MissingShard { index: index.into(), shard: (*shard).into() });
                }
                Err(e) => return Err(WeightsError::Io { path, op: "resolve", source: e }),
            };
            // Inside the folder, or (a Hugging Face cache snapshot, whose files are links to
            // `../../blobs/<hash>`) inside the repo's blobs folder.
            let hf_blobs = root
                .parent()
                .filter(|p| p.file_name().is_some_and(|n| n == "snapshots"))
                .and_then(Path::parent)
                .map(|repo| repo.join("blobs"));
            if !real.starts_with(&root) && !hf_blobs.is_some_and(|b| real.starts_with(b)) {
                return Err(WeightsError::ShardOutsideFolder { index: index.into(), shard: (*shard).into() });
            }
            let (file, len) = open_file(&path)?;
            let raws = match sniff(&path, &file, len)? {
                Kind::Torch => {
                    any_torch = true;
                    torch::read_tensors(&path, &file, len)?
                }
                Kind::Safetensors => {
                    any_st = true;
                    safetensors::read_header(&path, &file, len)?.tensors
                }
                Kind::Gguf => return Err(bad(format!("shard `{shard}` is a GGUF file"))),
            };
            ck.add_file(&path, file, raws)?;
        }
        if any_torch && any_st {
            return Err(bad("mixes safetensors and PyTorch shards".into()));
        }
        if any_torch {
            ck.format = Format::TorchSharded;
        }
        for (tensor, shard) in &wanted {
            let here = ck.by_name.get(tensor).and_then(|&i| ck.tensors.get(i));
            let ok = here.is_some_and(|t| t.file == folder.join(shard));
            if !ok {
                return Err(WeightsError::IndexTensorMissing {
                    index: index.into(),
                    shard: shard.clone(),
                    tensor: tensor.clone(),
                });
            }
        }
        Ok(ck)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The folder the checkpoint lives in (where config and tokenizer files are looked for).
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The data files, in the order their tensors are listed.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every tensor, in a stable order: files in order (shards sorted by name), and within a
    /// file by position (safetensors, GGUF) or state-dict order (PyTorch).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor with this name.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The `__metadata__` of a single safetensors file (empty otherwise).
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The parsed GGUF header, for GGUF checkpoints.
    pub fn gguf(&self) -> Option<&Gguf> {
        self.gguf.as_ref()
    }

    /// Sum of all tensors' byte sizes.
    pub fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.byte_len).fold(0, u64::saturating_add)
    }

    /// Reads up to `buf.len()` bytes of `tensor` starting `offset` bytes into it; returns the
    /// number read (less than `buf.len()` only at the tensor's end). Memory stays bounded by
    /// the caller's buffer however large the tensor is.
    pub fn read_chunk(&self, tensor: &TensorInfo, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if offset > tensor.byte_len {
            return Err(WeightsError::ReadOutOfRange {
                tensor: tensor.name.clone(),
                offset,
                len: buf.len() as u64,
                byte_len: tensor.byte_len,
            });
        }
        let n = (tensor.byte_len - offset).min(buf.len() as u64) as usize;
        let Some(file) = self.handles.get(tensor.file_index) else {
            return Err(WeightsError::ReadOutOfRange {
                tensor: tensor.name.clone(),
                offset,
                len: n as u64,
                byte_len: tensor.byte_len,
            });
        };
        let dst = buf.get_mut(..n).unwrap_or_default();
        file.read_exact_at(dst, tensor.offset.saturating_add(offset)).map_err(io_err(&tensor.file, "read"))?;
        Ok(n)
    }

    /// Reads a whole tensor, refusing ones larger than `limit` bytes (for small tensors only;
    /// stream large ones with [`Checkpoint::read_chunk`]).
    pub fn read_to_vec(&self, tensor: &TensorInfo, limit: u64) -> Result<Vec<u8>> {
        if tensor.byte_len > limit {
            return Err(WeightsError::TensorTooLarge { tensor: tensor.name.clone(), byte_len: tensor.byte_len, limit });
        }
        let mut buf = vec![0u8; tensor.byte_len as usize];
        self.read_chunk(tensor, 0, &mut buf)?;
        Ok(buf)
    }

    /// Calls `f` with consecutive chunks of `tensor` (each at most `buf.len()` bytes) and the
    /// offset of each chunk within the tensor.
    pub fn for_each_chunk(
        &self,
        tensor: &TensorInfo,
        buf: &mut [u8],
        mut f: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        if buf.is_empty() && tensor.byte_len > 0 {
            return Err(WeightsError::ReadOutOfRange {
                tensor: tensor.name.clone(),
                offset: 0,
                len: 0,
                byte_len: tensor.byte_len,
            });
        }
        let mut offset = 0u64;
        while offset < tensor.byte_len {
            let n = self.read_chunk(tensor, offset, buf)?;
            f(offset, buf.get(..n).unwrap_or_default())?;
            offset += n as u64;
        }
        Ok(())
    }
}
