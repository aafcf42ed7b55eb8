//! A bounded reader of zip archives that store their entries uncompressed (PyTorch's format).
//!
//! Only what torch writes is accepted: one disk, STORED entries, optional zip64 records. The
//! reader parses the end-of-central-directory record (and its zip64 form), reads the central
//! directory in one bounded read, and resolves an entry's data offset through its local header
//! only when asked. Every size and offset is checked against the file before it is used, so a
//! hostile archive yields an error, never a panic or a huge allocation.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, WeightsError, io_err};

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: u64 = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// Largest central directory read into memory (a 70B checkpoint shard has a few hundred entries).
const MAX_CENTRAL_DIR: u64 = 64 << 20;

/// One stored entry: its name, where its bytes start in the file, and how many there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Offset of the local file header.
    header_offset: u64,
    pub size: u64,
    method: u16,
    flags: u16,
}

/// The central directory of an open archive.
#[derive(Debug)]
pub struct Archive {
    path: PathBuf,
    file_len: u64,
    /// Entries end before this offset (the central directory's start).
    data_end: u64,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

impl Archive {
    /// Reads the central directory of `file` (of length `file_len`).
    pub fn open(path: &Path, file: &File, file_len: u64) -> Result<Archive> {
        let bad = |reason: String| WeightsError::Zip { path: path.into(), reason };
        if file_len < EOCD_LEN {
            return Err(bad(format!("{file_len} bytes is too short for an end-of-central-directory record")));
        }
        // The EOCD record is the last 22 bytes plus a comment of up to 65535 bytes.
        let tail_len = file_len.min(EOCD_LEN + 0xFFFF);
        let tail_start = file_len - tail_len;
        let mut tail = vec![0u8; tail_len as usize];
        file.read_exact_at(&mut tail, tail_start).map_err(io_err(path, "read"))?;
        let mut found = None;
        let mut i = tail.len().saturating_sub(EOCD_LEN as usize);
        loop {
            if le32(&tail, i) == EOCD_SIG {
                let comment = le16(&tail, i + 20) as usize;
                if i + EOCD_LEN as usize + comment == tail.len() {
                    found = Some(i);
                    break;
                }
            }
            if i == 0 {
                break;
            }
            i -= 1;
        }
        let Some(at) = found else {
            return Err(bad("no end-of-central-directory record".into()));
        };
        let eocd_pos = tail_start + at as u64;
        let disk = le16(&tail, at + 4);
        let cd_disk = le16(&tail, at + 6);
        let mut count = le16(&tail, at + 10) as u64;
        let mut cd_size = le32(&tail, at + 12) as u64;
        let mut cd_offset = le32(&tail, at + 16) as u64;
        let mut region_end = eocd_pos;
        if disk != 0 || cd_disk != 0 {
            return Err(bad("multi-disk archives are not supported".into()));
        }
        // A zip64 locator sits right before the EOCD when the archive has zip64 records.
        if eocd_pos >= 20 {
            let mut loc = [0u8; 20];
            file.read_exact_at(&mut loc, eocd_pos - 20).map_err(io_err(path, "read"))?;
            if le32(&loc, 0) == EOCD64_LOCATOR_SIG {
                let eocd64 = le64(&loc, 8);
                if le32(&loc, 4) != 0 || le32(&loc, 16) > 1 {
                    return Err(bad("multi-disk zip64 archives are not supported".into()));
                }
                if eocd64.checked_add(56).is_none_or(|end| end > eocd_pos - 20) {
                    return Err(bad(format!("zip64 end record offset {eocd64} is out of range")));
                }
                let mut rec = [0u8; 56];
                file.read_exact_at(&mut rec, eocd64).map_err(io_err(path, "read"))?;
                if le32(&rec, 0) != EOCD64_SIG {
                    return Err(bad("zip64 end record has a bad signature".into()));
                }
                count = le64(&rec, 32);
                cd_size = le64(&rec, 40);
                cd_offset = le64(&rec, 48);
                region_end = eocd64;
            }
        }
        let cd_end = cd_offset.checked_add(cd_size);
        if cd_end.is_none_or(|end| end > region_end) {
            return Err(bad(format!(
                "central directory [{cd_offset}, +{cd_size}) does not fit before offset {region_end}"
            )));
        }
        if cd_size > MAX_CENTRAL_DIR {
            return Err(bad(format!("central directory of {cd_size} bytes is larger than {MAX_CENTRAL_DIR}")));
        }
        if count > cd_size / CENTRAL_LEN as u64 {
            return Err(bad(format!("{count} entries cannot fit in a central directory of {cd_size} bytes")));
        }
        let mut cd = vec![0u8; cd_size as usize];
        file.read_exact_at(&mut cd, cd_offset).map_err(io_err(path, "read"))?;
        let mut entries = Vec::with_capacity(count as usize);
        let mut by_name = HashMap::with_capacity(count as usize);
        let mut pos = 0usize;
        for n in 0..count {
            let Some(fixed) = cd.get(pos..pos + CENTRAL_LEN) else {
                return Err(bad(format!("central directory entry {n} is truncated")));
            };
            if le32(fixed, 0) != CENTRAL_SIG {
                return Err(bad(format!("central directory entry {n} has a bad signature")));
            }
            let flags = le16(fixed, 8);
            let method = le16(fixed, 10);
            let mut csize = le32(fixed, 20) as u64;
            let mut usize_ = le32(fixed, 24) as u64;
            let name_len = le16(fixed, 28) as usize;
            let extra_len = le16(fixed, 30) as usize;
            let comment_len = le16(fixed, 32) as usize;
            let disk_start = le16(fixed, 34);
            let mut header_offset = le32(fixed, 42) as u64;
            let var = pos + CENTRAL_LEN;
            let Some(name) = cd.get(var..var + name_len) else {
                return Err(bad(format!("central directory entry {n}: name runs past the directory")));
            };
            let Some(extra) = cd.get(var + name_len..var + name_len + extra_len) else {
                return Err(bad(format!("central directory entry {n}: extra field runs past the directory")));
            };
            let name = String::from_utf8_lossy(name).into_owned();
            // zip64 extended information: the saturated 32-bit fields follow, in this order.
            let mut e = 0usize;
            while e + 4 <= extra.len() {
                let id = le16(extra, e);
                let len = le16(extra, e + 2) as usize;
                let Some(body) = extra.get(e + 4..e + 4 + len) else {
                    return Err(bad(format!("entry `{name}`: extra field runs past its end")));
                };
                if id == 0x0001 {
                    let mut k = 0usize;
                    let mut take = |field: &mut u64| -> Result<()> {
                        if *field == 0xFFFF_FFFF {
                            if k + 8 > body.len() {
                                return Err(bad(format!("entry `{name}`: zip64 field missing")));
                            }
                            *field = le64(body, k);
                            k += 8;
                        }
                        Ok(())
                    };
                    take(&mut usize_)?;
                    take(&mut csize)?;
                    take(&mut header_offset)?;
                }
                e += 4 + len;
            }
            if disk_start != 0 && disk_start != 0xFFFF {
                return Err(bad(format!("entry `{name}` starts on disk {disk_start}")));
            }
            if method == 0 && csize != usize_ {
                return Err(bad(format!("stored entry `{name}` has size {usize_} but takes {csize} bytes")));
            }
            if header_offset >= cd_offset || csize > cd_offset {
                return Err(bad(format!(
                    "entry `{name}`: local header at {header_offset} with {csize} bytes is outside the archive"
                )));
            }
            pos = var + name_len + extra_len + comment_len;
            if pos > cd.len() {
                return Err(bad(format!("central directory entry {n}: comment runs past the directory")));
            }
            by_name.entry(name.clone()).or_insert(entries.len());
            entries.push(Entry { name, header_offset, size: csize, method, flags });
        }
        Ok(Archive { path: path.into(), file_len, data_end: cd_offset, entries, by_name })
    }

    /// All entries in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this exact name.
    pub fn entry(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).and_then(|&i| self.entries.get(i))
    }

    /// The absolute file offset of an entry's bytes, after checking its local header, that it
    /// is stored uncompressed and unencrypted, and that its bytes lie inside the archive.
    pub fn data_offset(&self, file: &File, entry: &Entry) -> Result<u64> {
        let bad = |reason: String| WeightsError::Zip { path: self.path.clone(), reason };
        if entry.method != 0 {
            return Err(WeightsError::ZipCompressed {
                path: self.path.clone(),
                entry: entry.name.clone(),
                method: entry.method,
            });
        }
        if entry.flags & 1 != 0 {
            return Err(bad(format!("entry `{}` is encrypted", entry.name)));
        }
        let mut local = [0u8; LOCAL_LEN];
        if entry.header_offset + LOCAL_LEN as u64 > self.data_end {
            return Err(bad(format!("entry `{}`: local header is past the data area", entry.name)));
        }
        file.read_exact_at(&mut local, entry.header_offset).map_err(io_err(&self.path, "read"))?;
        if le32(&local, 0) != LOCAL_SIG {
            return Err(bad(format!("entry `{}`: local header has a bad signature", entry.name)));
        }
        if le16(&local, 8) != 0 {
            return Err(WeightsError::ZipCompressed {
                path: self.path.clone(),
                entry: entry.name.clone(),
                method: le16(&local, 8),
            });
        }
        let name_len = le16(&local, 26) as u64;
        let extra_len = le16(&local, 28) as u64;
        let start = entry.header_offset + LOCAL_LEN as u64 + name_len + extra_len;
        match start.checked_add(entry.size) {
            Some(end) if end <= self.data_end && end <= self.file_len => Ok(start),
            _ => Err(bad(format!(
                "entry `{}`: {} bytes at offset {start} run past the data area ({})",
                entry.name, entry.size, self.data_end
            ))),
        }
    }

    /// Reads a whole (small) entry, refusing entries larger than `limit`.
    pub fn read_entry(&self, file: &File, entry: &Entry, limit: u64) -> Result<Vec<u8>> {
        if entry.size > limit {
            return Err(WeightsError::Zip {
                path: self.path.clone(),
                reason: format!("entry `{}` is {} bytes, more than the {limit} allowed", entry.name, entry.size),
            });
        }
        let start = self.data_offset(file, entry)?;
        let mut buf = vec![0u8; entry.size as usize];
        file.read_exact_at(&mut buf, start).map_err(io_err(&self.path, "read"))?;
        Ok(buf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a stored zip (with data descriptors' flag, as torch does) in memory.
    pub(crate) fn build_zip(entries: &[(&str, &[u8])], method: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in entries {
            let off = out.len() as u32;
            out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
            out.extend_from_slice(&[20, 0, 8, 8]);
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 16]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 8, 8]);
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&off.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_off = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&[0; 2]);
        out
    }

    /// A one-entry archive in full zip64 form: saturated 32-bit fields, the real values in
    /// the entry's zip64 extra field, and a zip64 end record plus locator.
    fn build_zip64(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        out.extend_from_slice(&[45, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        let cd_off = out.len() as u64;
        let mut extra = Vec::new();
        extra.extend_from_slice(&1u16.to_le_bytes());
        extra.extend_from_slice(&24u16.to_le_bytes());
        extra.extend_from_slice(&(data.len() as u64).to_le_bytes());
        extra.extend_from_slice(&(data.len() as u64).to_le_bytes());
        extra.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&extra);
        let cd_size = out.len() as u64 - cd_off;
        let eocd64 = out.len() as u64;
        out.extend_from_slice(&EOCD64_SIG.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&1u64.to_le_bytes());
        out.extend_from_slice(&cd_size.to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&EOCD64_LOCATOR_SIG.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&eocd64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&[0xFF; 4]);
        out.extend_from_slice(&[0xFF; 8]);
        out.extend_from_slice(&[0; 2]);
        out
    }

    #[test]
    fn reads_zip64_records_and_refuses_absurd_ones() {
        let bytes = build_zip64("a/data/0", b"zip64!");
        let (_t, f, a) = open_bytes(&bytes);
        let a = a.unwrap();
        let e = a.entry("a/data/0").unwrap().clone();
        assert_eq!(a.read_entry(&f, &e, 100).unwrap(), b"zip64!");
        // A zip64 entry count far beyond what the directory can hold.
        let mut bad = bytes.clone();
        let eocd64 = bytes.len() - 22 - 20 - 56;
        bad[eocd64 + 32..eocd64 + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let (_t, _f, a) = open_bytes(&bad);
        assert!(matches!(a, Err(WeightsError::Zip { .. })), "{a:?}");
        // A zip64 entry size running past the archive.
        let mut bad = bytes.clone();
        let extra = bytes.len() - 22 - 20 - 56 - 28;
        bad[extra + 4..extra + 12].copy_from_slice(&(1u64 << 50).to_le_bytes());
        bad[extra + 12..extra + 20].copy_from_slice(&(1u64 << 50).to_le_bytes());
        let (_t, _f, a) = open_bytes(&bad);
        assert!(matches!(a, Err(WeightsError::Zip { .. })), "{a:?}");
    }

    fn open_bytes(bytes: &[u8]) -> (tempfile::NamedTempFile, File, Result<Archive>) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), bytes).unwrap();
        let f = File::open(tmp.path()).unwrap();
        let a = Archive::open(tmp.path(), &f, bytes.len() as u64);
        (tmp, f, a)
    }

    #[test]
    fn reads_stored_entries() {
        let bytes = build_zip(&[("a/data.pkl", b"xyz"), ("a/data/0", b"0123")], 0);
        let (_t, f, a) = open_bytes(&bytes);
        let a = a.unwrap();
        let e = a.entry("a/data/0").unwrap().clone();
        assert_eq!(a.read_entry(&f, &e, 10).unwrap(), b"0123");
        assert!(a.read_entry(&f, &e, 3).is_err());
    }

    #[test]
    fn refuses_compressed_and_broken() {
        let bytes = build_zip(&[("a/data.pkl", b"xyz")], 8);
        let (_t, f, a) = open_bytes(&bytes);
        let a = a.unwrap();
        let e = a.entry("a/data.pkl").unwrap().clone();
        assert!(matches!(a.data_offset(&f, &e), Err(WeightsError::ZipCompressed { method: 8, .. })));
        // Every truncation of a valid archive is an error or a valid shorter view, never a panic.
        let good = build_zip(&[("a/data.pkl", b"xyz"), ("a/data/0", b"0123")], 0);
        for cut in 0..good.len() {
            let (_t, f, a) = open_bytes(&good[..cut]);
            if let Ok(a) = a {
                for e in a.entries().to_vec() {
                    let _ = a.read_entry(&f, &e, 100);
                }
            }
        }
        // Every single-byte corruption too.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xFF;
            let (_t, f, a) = open_bytes(&b);
            if let Ok(a) = a {
                for e in a.entries().to_vec() {
                    let _ = a.read_entry(&f, &e, 100);
                }
            }
        }
    }
}
