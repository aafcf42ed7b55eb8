//! Shared helpers: a raw HTTP/1.1 client, hashes computed independently of the crate, fixtures and cache checks.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// One HTTP response as it arrived on the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn content_length(&self) -> usize {
        self.header("content-length").expect("content-length").parse().expect("numeric content-length")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// `127.0.0.1:PORT` from `http://127.0.0.1:PORT`.
pub fn addr(endpoint: &str) -> String {
    endpoint.strip_prefix("http://").expect("http endpoint").to_string()
}

fn write_request(stream: &mut TcpStream, method: &str, target: &str, headers: &[(&str, &str)], close: bool) {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: testhub\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write request");
}

/// Splits a raw response into status, headers and the body bytes that follow the head.
fn parse_head(raw: &[u8]) -> (u16, BTreeMap<String, String>, usize) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("complete response head") + 4;
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, end)
}

/// Sends one request on a fresh connection (`Connection: close`) and reads until the server closes it, so a
/// truncated body shows as fewer bytes than `Content-Length`.
pub fn request(endpoint: &str, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr(endpoint)).expect("connect");
    write_request(&mut stream, method, target, headers, true);
    let mut raw = Vec::new();
    let mut buf = [0; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let (status, headers, start) = parse_head(&raw);
    Reply { status, headers, body: raw[start..].to_vec() }
}

pub fn get(endpoint: &str, target: &str) -> Reply {
    request(endpoint, "GET", target, &[])
}

/// Sends a request on an open keep-alive connection and reads exactly one response (by Content-Length).
pub fn request_on(stream: &mut TcpStream, method: &str, target: &str) -> Reply {
    write_request(stream, method, target, &[], false);
    let mut raw = Vec::new();
    let mut byte = [0; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read head");
        raw.push(byte[0]);
    }
    let (status, headers, _) = parse_head(&raw);
    let len: usize = headers.get("content-length").map_or(0, |v| v.parse().expect("content-length"));
    let len = if method == "HEAD" { 0 } else { len };
    let mut body = vec![0; len];
    stream.read_exact(&mut body).expect("read body");
    Reply { status, headers, body }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `git hash-object` of the bytes.
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()));
    h.update(bytes);
    hex(&h.finalize())
}

/// The git-lfs pointer that git stores for an LFS file.
pub fn lfs_pointer(bytes: &[u8]) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n", sha256(bytes), bytes.len())
}

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The tiny-llama fixture folder, or a failure that says where it was looked for.
pub fn tiny_llama() -> PathBuf {
    let dir = workspace_root().join("tests/fixtures/reference/tiny-llama");
    assert!(
        dir.join("config.json").is_file() && dir.join("model.safetensors").is_file(),
        "fixture missing: {} (it is part of the repository: tests/fixtures/reference/tiny-llama)",
        dir.display()
    );
    dir
}

/// Every regular file of a folder, by relative name.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let name = format!("{prefix}{}", entry.file_name().to_str().expect("UTF-8 name"));
            if entry.file_type().expect("file type").is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.insert(name, std::fs::read(entry.path()).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

/// Checks the standard cache layout for one file: `snapshots/<commit>/<name>` is a relative symlink to
/// `blobs/<sha256>` (LFS) or `blobs/<git blob id>` (plain), and both hold `content`.
pub fn assert_cached(repo_dir: &Path, commit: &str, name: &str, content: &[u8], lfs: bool) {
    let pointer = repo_dir.join("snapshots").join(commit).join(name);
    let blob_name = if lfs { sha256(content) } else { git_blob_id(content) };
    let blob = repo_dir.join("blobs").join(&blob_name);
    let link = std::fs::read_link(&pointer).unwrap_or_else(|e| panic!("{} is not a symlink: {e}", pointer.display()));
    assert!(link.is_relative(), "{} -> {} is not relative", pointer.display(), link.display());
    let depth = name.matches('/').count();
    let want = Path::new(&"../".repeat(depth + 2)).join("blobs").join(&blob_name);
    assert_eq!(link, want, "{name}");
    assert_eq!(std::fs::read(&blob).expect("blob"), content, "blob of {name}");
    assert_eq!(std::fs::read(&pointer).expect("snapshot file"), content, "snapshot of {name}");
}

/// The commit a ref file holds.
pub fn read_ref(repo_dir: &Path, name: &str) -> String {
    std::fs::read_to_string(repo_dir.join("refs").join(name)).unwrap_or_else(|e| panic!("refs/{name}: {e}"))
}

/// The small LFS and plain files most tests serve.
pub fn small_repo() -> Vec<(String, Vec<u8>)> {
    vec![
        ("config.json".into(), br#"{"model_type": "llama"}"#.to_vec()),
        ("model.safetensors".into(), (0..5000u32).map(|i| (i * 7 % 251) as u8).collect()),
        ("sub/dir/notes.txt".into(), b"nested file\n".to_vec()),
    ]
}
