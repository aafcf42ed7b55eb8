//! The hub's HTTP API: path parsing, model info, tree and paths-info listings, `resolve` with ETag, Range
//! and LFS redirects, and the CDN that serves LFS blobs by sha256.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LOCATION, RANGE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::conn::CutSwitch;
use crate::state::{ContentKey, FIXED_TIME, FileEntry, HubState, Repo};

/// Largest request body read (paths-info forms are small).
const MAX_REQUEST_BODY: usize = 1 << 20;

/// State shared by the hub's listeners and the `TestHub` handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub state: Mutex<HubState>,
    /// TCP connections accepted by both listeners.
    pub connections: Arc<AtomicU64>,
    /// Base URL of the CDN listener that LFS redirects point to.
    pub cdn_endpoint: String,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters to a test.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    /// The CDN listener serves `/lfs/<sha256>` only.
    cdn: bool,
}

/// The router of the hub listener (`cdn == false`) or of the CDN listener.
pub(crate) fn router(shared: Arc<Shared>, cdn: bool) -> Router {
    Router::new().fallback(handle).with_state(Ctx { shared, cdn })
}

/// What a request's path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET /api/models/{repo}` (`revision` None) or `/api/models/{repo}/revision/{rev}`.
    Info {
        repo: String,
        revision: Option<String>,
    },
    /// `GET /api/models/{repo}/tree/{rev}[/{path}]`.
    Tree {
        repo: String,
        revision: String,
        path: String,
    },
    /// `POST /api/models/{repo}/paths-info/{rev}`.
    PathsInfo {
        repo: String,
        revision: String,
    },
    /// `GET|HEAD /{repo}/resolve/{rev}/{path}`.
    Resolve {
        repo: String,
        revision: String,
        path: String,
    },
    /// `GET|HEAD /lfs/{sha256}`.
    Lfs {
        sha256: String,
    },
    /// `GET /simple/{package}/`: the test PyPI index (PEP 691 JSON).
    PypiIndex {
        package: String,
    },
    /// An API path of a repo that is not on the hub.
    UnknownRepo {
        repo: String,
    },
    NotFound,
}

/// Decodes `%XX` escapes; None for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `a=1&b=x+y` → pairs, with `+` as space and `%XX` decoded; None on a bad escape.
fn parse_form(s: &str) -> Option<Vec<(String, String)>> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(&k.replace('+', " "))?, percent_decode(&v.replace('+', " "))?))
        })
        .collect()
}

fn is_true(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "1" | "true")
}

/// Maps decoded path segments to a route. Repo ids have one or two segments; a known repo wins.
fn route(state: &HubState, segs: &[String], cdn: bool) -> Route {
    let seg = |i: usize| segs.get(i).map(String::as_str);
    if let [lfs, sha256] = segs
        && lfs == "lfs"
    {
        return Route::Lfs { sha256: sha256.clone() };
    }
    if cdn {
        return Route::NotFound;
    }
    if let [simple, package, rest @ ..] = segs
        && simple == "simple"
        && rest.iter().all(String::is_empty)
    {
        return Route::PypiIndex { package: package.clone() };
    }
    let known = |id: &str| state.repos.contains_key(id);
    if seg(0) == Some("api") {
        if seg(1) != Some("models") || segs.len() < 3 {
            return Route::NotFound;
        }
        let rest = &segs[2..];
        let two = (rest.len() >= 2).then(|| format!("{}/{}", rest[0], rest[1]));
        let (repo, tail) = match two {
            Some(id) if known(&id) => (id, &rest[2..]),
            _ if known(&rest[0]) => (rest[0].clone(), &rest[1..]),
            Some(id) if !matches!(rest[1].as_str(), "revision" | "tree" | "paths-info") => {
                return Route::UnknownRepo { repo: id };
            }
            _ => return Route::UnknownRepo { repo: rest[0].clone() },
        };
        return match tail {
            [] => Route::Info { repo, revision: None },
            [kw, rev @ ..] if kw == "revision" && !rev.is_empty() => {
                Route::Info { repo, revision: Some(rev.join("/")) }
            }
            [kw, rev, path @ ..] if kw == "tree" => Route::Tree { repo, revision: rev.clone(), path: path.join("/") },
            [kw, rev] if kw == "paths-info" => Route::PathsInfo { repo, revision: rev.clone() },
            _ => Route::NotFound,
        };
    }
    // `/{repo}/resolve/{rev}/{path...}`.
    let two = (segs.len() >= 4 && seg(2) == Some("resolve")).then(|| format!("{}/{}", segs[0], segs[1]));
    let one = (segs.len() >= 3 && seg(1) == Some("resolve")).then(|| segs[0].clone());
    let (repo, after) = match (two, one) {
        (Some(id), _) if known(&id) => (id, 3),
        (_, Some(id)) if known(&id) => (id, 2),
        (Some(id), _) | (None, Some(id)) => return Route::UnknownRepo { repo: id },
        (None, None) => return Route::NotFound,
    };
    Route::Resolve { repo, revision: segs[after].clone(), path: segs[after + 1..].join("/") }
}

/// A hub-style error: status, `X-Error-Code`, `X-Error-Message` and `{"error": message}`.
fn hub_error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(code) = code {
        headers.insert("x-error-code", HeaderValue::from_str(code).unwrap_or(HeaderValue::from_static("Error")));
    }
    // A message quoting a hostile path may hold bytes a header cannot; the JSON body still has it.
    if let Ok(value) = HeaderValue::from_str(message) {
        headers.insert("x-error-message", value);
    }
    (status, headers, Json(json!({ "error": message }))).into_response()
}

fn not_found() -> Response {
    hub_error(StatusCode::NOT_FOUND, None, "Not Found")
}

fn repo_not_found(repo: &str) -> Response {
    hub_error(StatusCode::NOT_FOUND, Some("RepoNotFound"), &format!("Repository not found: {repo}"))
}

fn bad_request(message: &str) -> Response {
    hub_error(StatusCode::BAD_REQUEST, None, message)
}

/// Why a repo lookup failed; each maps to the hub's status and `X-Error-Code`.
#[derive(Debug)]
enum LookupError {
    RepoNotFound(String),
    RevisionNotFound(String),
    /// No token sent for a gated repo: 401 `GatedRepo`.
    TokenMissing(String),
    /// Another token sent: 403 `GatedRepo` (the hub's answer for a valid token without access).
    TokenWrong(String),
}

impl IntoResponse for LookupError {
    /// `GatedRepo` makes huggingface_hub raise `GatedRepoError`, which it never hides behind a cache fallback.
    fn into_response(self) -> Response {
        match self {
            LookupError::RepoNotFound(repo) => repo_not_found(&repo),
            LookupError::RevisionNotFound(revision) => {
                hub_error(StatusCode::NOT_FOUND, Some("RevisionNotFound"), &format!("Invalid rev id: {revision}"))
            }
            LookupError::TokenMissing(repo) => hub_error(
                StatusCode::UNAUTHORIZED,
                Some("GatedRepo"),
                &format!(
                    "Access to model {repo} is restricted. You must have access to it and be authenticated to access it. Please log in."
                ),
            ),
            LookupError::TokenWrong(repo) => hub_error(
                StatusCode::FORBIDDEN,
                Some("GatedRepo"),
                &format!("Access to model {repo} is restricted and you are not in the authorized list."),
            ),
        }
    }
}

/// The repo and the commit id a revision names, after the token check.
fn lookup<'s>(
    state: &'s HubState,
    repo_id: &str,
    revision: &str,
    auth: Option<&str>,
) -> Result<(&'s Repo, String), LookupError> {
    let repo = state.repos.get(repo_id).ok_or_else(|| LookupError::RepoNotFound(repo_id.to_string()))?;
    if let Some(token) = &repo.token {
        match auth.and_then(|a| a.strip_prefix("Bearer ")) {
            Some(given) if given == token => {}
            Some(_) => return Err(LookupError::TokenWrong(repo_id.to_string())),
            None => return Err(LookupError::TokenMissing(repo_id.to_string())),
        }
    }
    let commit = repo.resolve(revision).ok_or_else(|| LookupError::RevisionNotFound(revision.to_string()))?;
    Ok((repo, commit.to_string()))
}

fn model_info(state: &HubState, repo_id: &str, revision: &str, auth: Option<&str>, blobs: bool) -> Response {
    let (repo, commit_id) = match lookup(state, repo_id, revision, auth) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let commit = &repo.commits[&commit_id];
    let siblings: Vec<Value> = commit
        .files
        .iter()
        .map(|(name, file)| {
            let mut sibling = json!({ "rfilename": name });
            if blobs {
                sibling["size"] = json!(file.content.len());
                sibling["blobId"] = json!(file.git_oid());
                if let Some(lfs) = &file.lfs {
                    sibling["lfs"] =
                        json!({ "sha256": file.sha256, "size": file.content.len(), "pointerSize": lfs.pointer_size });
                }
            }
            sibling
        })
        .collect();
    let mut info = json!({
        "_id": &commit_id[..24],
        "id": repo_id,
        "modelId": repo_id,
        "sha": commit_id,
        "lastModified": FIXED_TIME,
        "createdAt": FIXED_TIME,
        "private": repo.token.is_some(),
        "gated": false,
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
    });
    if let Some((author, _)) = repo_id.split_once('/') {
        info["author"] = json!(author);
    }
    Json(info).into_response()
}

/// A tree entry as `/tree` and `/paths-info` list it.
fn file_entry_json(path: &str, file: &FileEntry) -> Value {
    let mut entry = json!({ "type": "file", "oid": file.git_oid(), "size": file.content.len(), "path": path });
    if let Some(lfs) = &file.lfs {
        entry["lfs"] = json!({ "oid": file.sha256, "size": file.content.len(), "pointerSize": lfs.pointer_size });
    }
    entry
}

fn dir_entry_json(commit_id: &str, path: &str) -> Value {
    // Git would hash the folder's listing; any stable 40-hex id does for clients.
    let oid = crate::state::git_blob_id(format!("tree {commit_id} {path}").as_bytes());
    json!({ "type": "directory", "oid": oid, "size": 0, "path": path })
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn tree(state: &HubState, repo_id: &str, revision: &str, path: &str, recursive: bool, auth: Option<&str>) -> Response {
    let (repo, commit_id) = match lookup(state, repo_id, revision, auth) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let commit = &repo.commits[&commit_id];
    let dirs = commit.directories();
    if !path.is_empty() && !dirs.contains(path) {
        return hub_error(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            &format!("{path} does not exist on \"{revision}\""),
        );
    }
    let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
    let wanted = |p: &str| p.starts_with(&prefix) && (recursive || parent(p) == path);
    let mut entries: Vec<Value> = dirs.iter().filter(|d| wanted(d)).map(|d| dir_entry_json(&commit_id, d)).collect();
    entries.extend(commit.files.iter().filter(|(p, _)| wanted(p)).map(|(p, f)| file_entry_json(p, f)));
    Json(Value::Array(entries)).into_response()
}

fn paths_info(
    state: &HubState,
    repo_id: &str,
    revision: &str,
    form: &[(String, String)],
    auth: Option<&str>,
) -> Response {
    let (repo, commit_id) = match lookup(state, repo_id, revision, auth) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let commit = &repo.commits[&commit_id];
    let dirs = commit.directories();
    let entries: Vec<Value> = form
        .iter()
        .filter(|(k, _)| k == "paths")
        .filter_map(|(_, p)| match commit.files.get(p) {
            Some(file) => Some(file_entry_json(p, file)),
            None => dirs.contains(p).then(|| dir_entry_json(&commit_id, p)),
        })
        .collect();
    Json(Value::Array(entries)).into_response()
}

/// A parsed `Range` header against a body of known size.
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// No Range header.
    Full,
    /// First and last byte, inclusive, within the body.
    Part(u64, u64),
    /// Well-formed but outside the body: 416.
    Unsatisfiable,
    /// Not a single `bytes=` range: 400 (strict on purpose, to surface client bugs).
    Invalid,
}

fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(header) = header else { return ByteRange::Full };
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return ByteRange::Invalid };
    let Some((first, last)) = spec.trim().split_once('-') else { return ByteRange::Invalid };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    if first.trim().is_empty() {
        // Suffix range: the last N bytes.
        return match number(last) {
            None => ByteRange::Invalid,
            Some(0) => ByteRange::Unsatisfiable,
            Some(_) if size == 0 => ByteRange::Unsatisfiable,
            Some(n) => ByteRange::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(start) = number(first) else { return ByteRange::Invalid };
    let end = if last.trim().is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            _ => return ByteRange::Invalid,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part(start, end.map_or(size - 1, |e| e.min(size - 1)))
}

/// Everything a content response needs, gathered under the lock.
struct Content {
    bytes: Bytes,
    /// Headers besides the length and range ones (ETag, X-Repo-Commit, ...).
    headers: HeaderMap,
    /// Which faults apply.
    key: OwnedKey,
}

/// An owned [`ContentKey`], carried out of the lock.
enum OwnedKey {
    Path { repo: String, path: String },
    Lfs { sha256: String },
}

impl OwnedKey {
    fn borrow(&self) -> ContentKey<'_> {
        match self {
            OwnedKey::Path { repo, path } => ContentKey::Path { repo, path },
            OwnedKey::Lfs { sha256 } => ContentKey::Lfs { sha256 },
        }
    }
}

/// Serves `content` for GET or HEAD with Range support, corrupted bytes and an armed cut.
fn serve_content(
    shared: &Shared,
    method: &Method,
    range: Option<&str>,
    content: Content,
    cut: Option<&CutSwitch>,
) -> Response {
    let size = content.bytes.len() as u64;
    let (status, start, end) = match parse_range(range, size) {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Part(first, last) => (StatusCode::PARTIAL_CONTENT, first, last + 1),
        ByteRange::Unsatisfiable => {
            let mut response = hub_error(StatusCode::RANGE_NOT_SATISFIABLE, None, "Requested Range Not Satisfiable");
            response.headers_mut().insert(CONTENT_RANGE, header_value(&format!("bytes */{size}")));
            return response;
        }
        ByteRange::Invalid => return bad_request("Invalid Range header: only one `bytes=` range is served"),
    };
    let mut headers = content.headers;
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        headers.insert(CONTENT_RANGE, header_value(&format!("bytes {start}-{}/{size}", end - 1)));
    }
    if method == Method::HEAD {
        return (status, headers, Body::empty()).into_response();
    }
    let faults = shared.lock().take_faults(&content.key.borrow(), end - start);
    let (start_usize, end_usize) = (start as usize, end as usize);
    let mut body = content.bytes.slice(start_usize..end_usize);
    let flips: Vec<u64> = faults.corrupt.into_iter().filter(|o| (start..end).contains(o)).collect();
    if !flips.is_empty() {
        let mut bytes = body.to_vec();
        for offset in flips {
            let i = (offset - start) as usize;
            bytes[i] = !bytes[i];
        }
        body = Bytes::from(bytes);
    }
    if let (Some(after), Some(cut)) = (faults.truncate_at, cut) {
        cut.arm(after);
    }
    (status, headers, Body::from(body)).into_response()
}

/// A header value from text that is known to be visible ASCII (hex ids, numbers, our URLs).
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"))
}

fn quoted(s: &str) -> HeaderValue {
    header_value(&format!("\"{s}\""))
}

fn resolve(
    shared: &Shared,
    method: &Method,
    range: Option<&str>,
    auth: Option<&str>,
    cut: Option<&CutSwitch>,
    (repo_id, revision, path): (&str, &str, &str),
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    let content = {
        let state = shared.lock();
        let (repo, commit_id) = match lookup(&state, repo_id, revision, auth) {
            Ok(found) => found,
            Err(e) => return e.into_response(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-repo-commit"), header_value(&commit_id));
        let Some(file) = repo.commits[&commit_id].files.get(path) else {
            let message = format!("Entry not found: {path} does not exist on \"{revision}\"");
            let mut response = hub_error(StatusCode::NOT_FOUND, Some("EntryNotFound"), &message);
            response.headers_mut().extend(headers);
            return response;
        };
        headers.insert(ETAG, quoted(file.git_oid()));
        if file.lfs.is_some() {
            // Like the hub: the metadata is on the redirect itself, the content comes from another origin.
            headers.insert(LOCATION, header_value(&format!("{}/lfs/{}", shared.cdn_endpoint, file.sha256)));
            headers.insert(HeaderName::from_static("x-linked-etag"), quoted(&file.sha256));
            headers.insert(HeaderName::from_static("x-linked-size"), HeaderValue::from(file.content.len()));
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            return (StatusCode::FOUND, headers, Body::empty()).into_response();
        }
        Content {
            bytes: file.content.clone(),
            headers,
            key: OwnedKey::Path { repo: repo_id.to_string(), path: path.to_string() },
        }
    };
    serve_content(shared, method, range, content, cut)
}

fn lfs(shared: &Shared, method: &Method, range: Option<&str>, cut: Option<&CutSwitch>, sha256: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return not_found();
    }
    let Some(bytes) = shared.lock().lfs_blobs.get(sha256).cloned() else { return not_found() };
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, quoted(sha256));
    let content = Content { bytes, headers, key: OwnedKey::Lfs { sha256: sha256.to_string() } };
    serve_content(shared, method, range, content, cut)
}

/// The PEP 691 JSON page of `package`: its wheels, served from the CDN.
fn pypi_index(shared: &Shared, package: &str) -> Response {
    let Some(wheels) = shared.lock().pypi_wheels(package) else { return not_found() };
    let files: Vec<serde_json::Value> = wheels
        .iter()
        .map(|(name, sha, size)| {
            serde_json::json!({
                "filename": name,
                "url": format!("{}/lfs/{sha}", shared.cdn_endpoint),
                "hashes": {"sha256": sha},
                "size": size,
                "yanked": false,
            })
        })
        .collect();
    let body = serde_json::json!({"meta": {"api-version": "1.1"}, "name": package, "files": files});
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/vnd.pypi.simple.v1+json"));
    (StatusCode::OK, headers, body.to_string()).into_response()
}

/// One line of the request log: method, path and query as sent, and the Range header if any.
fn log_line(method: &Method, req: &Request, range: Option<&str>) -> String {
    let target = req.uri().path_and_query().map_or_else(|| req.uri().path().to_string(), |pq| pq.as_str().to_string());
    let mut line = format!("{method} {target}");
    if let Some(range) = range {
        let _ = write!(line, " range={range}");
    }
    line
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    // Only owned copies cross the `await` below: a borrowed `Request` would make the future `!Send`.
    let (method, range, auth, cut, path, query) = {
        let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_string);
        let range = header(RANGE);
        let cut = req.extensions().get::<ConnectInfo<CutSwitch>>().map(|c| c.0.clone());
        let query = req.uri().query().map(str::to_string);
        (req.method().clone(), range, header(AUTHORIZATION), cut, req.uri().path().to_string(), query)
    };
    let line = log_line(&method, &req, range.as_deref());
    ctx.shared.lock().log.push(line);
    let Some(segs) = path.strip_prefix('/').unwrap_or(&path).split('/').map(percent_decode).collect::<Option<Vec<_>>>()
    else {
        return bad_request("Invalid percent-encoding in path");
    };
    let Some(query) = parse_form(query.as_deref().unwrap_or("")) else {
        return bad_request("Invalid percent-encoding in query");
    };
    let flag = |name: &str| query.iter().any(|(k, v)| k == name && is_true(v));

    let route = route(&ctx.shared.lock(), &segs, ctx.cdn);
    let (auth, range) = (auth.as_deref(), range.as_deref());
    match route {
        Route::Lfs { sha256 } => lfs(&ctx.shared, &method, range, cut.as_ref(), &sha256),
        Route::Resolve { repo, revision, path } => {
            resolve(&ctx.shared, &method, range, auth, cut.as_ref(), (&repo, &revision, &path))
        }
        Route::Info { repo, revision } if method == Method::GET => {
            let revision = revision.as_deref().unwrap_or("main");
            model_info(&ctx.shared.lock(), &repo, revision, auth, flag("blobs"))
        }
        Route::Tree { repo, revision, path } if method == Method::GET => {
            tree(&ctx.shared.lock(), &repo, &revision, &path, flag("recursive"), auth)
        }
        Route::PathsInfo { repo, revision } if method == Method::POST => {
            let body = match axum::body::to_bytes(req.into_body(), MAX_REQUEST_BODY).await {
                Ok(body) => body,
                Err(_) => return bad_request("Request body too large or unreadable"),
            };
            let Some(form) = std::str::from_utf8(&body).ok().and_then(parse_form) else {
                return bad_request("Invalid form body");
            };
            paths_info(&ctx.shared.lock(), &repo, &revision, &form, auth)
        }
        Route::UnknownRepo { repo } => repo_not_found(&repo),
        Route::PypiIndex { package } if method == Method::GET => pypi_index(&ctx.shared, &package),
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("refs%2Fpr%2F1").as_deref(), Some("refs/pr/1"));
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%2", "%zz", "%ff", "a%e2%82"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        use ByteRange::*;
        let check = |h: Option<&str>, size, want| assert_eq!(parse_range(h, size), want, "{h:?} of {size}");
        check(None, 10, Full);
        check(Some("bytes=0-0"), 10, Part(0, 0));
        check(Some("bytes=3-"), 10, Part(3, 9));
        check(Some("bytes=3-100"), 10, Part(3, 9));
        check(Some("bytes=-4"), 10, Part(6, 9));
        check(Some("bytes=-40"), 10, Part(0, 9));
        check(Some("bytes=10-"), 10, Unsatisfiable);
        check(Some("bytes=0-0"), 0, Unsatisfiable);
        check(Some("bytes=-0"), 10, Unsatisfiable);
        for bad in ["bytes=5-3", "bytes=a-", "bytes=-", "items=0-1", "bytes=0-1,3-4", "bytes=+1-2", "bytes=1"] {
            check(Some(bad), 10, Invalid);
        }
        check(Some("bytes=99999999999999999999999-"), 10, Invalid);
    }

    fn segs(path: &str) -> Vec<String> {
        path.split('/').map(str::to_string).collect()
    }

    #[test]
    fn routes() {
        let mut state = HubState::default();
        state.add_commit("org/m", vec![]);
        state.add_commit("gpt2", vec![]);
        let r = |p: &str| route(&state, &segs(p), false);
        let info = |repo: &str, rev: Option<&str>| Route::Info { repo: repo.into(), revision: rev.map(Into::into) };
        assert_eq!(r("api/models/org/m"), info("org/m", None));
        assert_eq!(r("api/models/org/m/revision/main"), info("org/m", Some("main")));
        assert_eq!(r("api/models/org/m/revision/refs/pr/1"), info("org/m", Some("refs/pr/1")));
        assert_eq!(r("api/models/gpt2"), info("gpt2", None));
        assert_eq!(r("api/models/gpt2/revision/v1"), info("gpt2", Some("v1")));
        assert_eq!(r("api/models/no/pe"), Route::UnknownRepo { repo: "no/pe".into() });
        assert_eq!(r("api/models/nope/revision/main"), Route::UnknownRepo { repo: "nope".into() });
        assert_eq!(
            r("api/models/org/m/tree/main/a/b"),
            Route::Tree { repo: "org/m".into(), revision: "main".into(), path: "a/b".into() }
        );
        assert_eq!(
            r("api/models/org/m/paths-info/main"),
            Route::PathsInfo { repo: "org/m".into(), revision: "main".into() }
        );
        assert_eq!(
            r("org/m/resolve/main/a/b.txt"),
            Route::Resolve { repo: "org/m".into(), revision: "main".into(), path: "a/b.txt".into() }
        );
        assert_eq!(
            r("gpt2/resolve/v1/x"),
            Route::Resolve { repo: "gpt2".into(), revision: "v1".into(), path: "x".into() }
        );
        assert_eq!(
            r("org/m/resolve/main/../evil.txt"),
            Route::Resolve { repo: "org/m".into(), revision: "main".into(), path: "../evil.txt".into() }
        );
        assert_eq!(r("no/pe/resolve/main/x"), Route::UnknownRepo { repo: "no/pe".into() });
        assert_eq!(r("lfs/abc"), Route::Lfs { sha256: "abc".into() });
        assert_eq!(r("api/datasets/org/m"), Route::NotFound);
        assert_eq!(r(""), Route::NotFound);
        assert_eq!(r("org/m"), Route::NotFound);
        assert_eq!(route(&state, &segs("org/m/resolve/main/x"), true), Route::NotFound);
    }

    #[test]
    fn forms() {
        let form = parse_form("paths=a+b&paths=c%2Fd&expand=False&flag").unwrap();
        let want = [("paths", "a b"), ("paths", "c/d"), ("expand", "False"), ("flag", "")];
        assert_eq!(form, want.map(|(k, v)| (k.to_string(), v.to_string())));
        assert_eq!(parse_form("a=%zz"), None);
    }
}
