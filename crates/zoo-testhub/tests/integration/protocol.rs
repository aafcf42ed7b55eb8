//! The wire protocol checked with a raw HTTP/1.1 client: headers, ranges, error codes, listings, faults.

use std::net::TcpStream;

use zoo_testhub::TestHub;

use crate::util::{self, get, git_blob_id, lfs_pointer, request, request_on, sha256, small_repo};

fn hub_with_small_repo() -> (TestHub, String) {
    let hub = TestHub::start();
    let commit = hub.add_commit("org/m", small_repo());
    (hub, commit)
}

fn file(name: &str) -> Vec<u8> {
    small_repo().into_iter().find(|(n, _)| n == name).map(|(_, c)| c).expect("file of small_repo")
}

#[test]
fn plain_file_get_and_head_carry_the_hub_headers() {
    let (hub, commit) = hub_with_small_repo();
    let content = file("config.json");
    for method in ["GET", "HEAD"] {
        let r = request(&hub.endpoint(), method, "/org/m/resolve/main/config.json", &[]);
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.header("etag"), Some(format!("\"{}\"", git_blob_id(&content)).as_str()));
        assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.content_length(), content.len());
        assert_eq!(r.header("x-linked-etag"), None);
        let want: &[u8] = if method == "GET" { &content } else { b"" };
        assert_eq!(r.body, want, "{method}");
    }
    // Nested names and a commit-id revision.
    let r = get(&hub.endpoint(), &format!("/org/m/resolve/{commit}/sub/dir/notes.txt"));
    assert_eq!((r.status, r.body), (200, file("sub/dir/notes.txt")));
}

#[test]
fn ranges_give_206_416_and_400() {
    let (hub, _) = hub_with_small_repo();
    let content = file("config.json");
    let len = content.len();
    let range = |spec: &str| request(&hub.endpoint(), "GET", "/org/m/resolve/main/config.json", &[("Range", spec)]);
    for (spec, first, last) in
        [("bytes=0-0", 0, 0), ("bytes=5-", 5, len - 1), ("bytes=2-9", 2, 9), ("bytes=-3", len - 3, len - 1)]
    {
        let r = range(spec);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(r.header("content-range"), Some(format!("bytes {first}-{last}/{len}").as_str()), "{spec}");
        assert_eq!(r.body, &content[first..=last], "{spec}");
        assert_eq!(r.content_length(), last - first + 1);
        assert!(r.header("etag").is_some() && r.header("x-repo-commit").is_some());
    }
    // An end past the file is clamped.
    assert_eq!(range("bytes=3-100000").body, &content[3..]);
    let r = range(&format!("bytes={len}-"));
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some(format!("bytes */{len}").as_str()));
    for bad in ["bytes=abc", "bytes=5-2", "items=0-1", "bytes=0-1,4-5"] {
        assert_eq!(range(bad).status, 400, "{bad}");
    }
}

#[test]
fn lfs_files_redirect_to_the_cdn_with_linked_headers() {
    let (hub, commit) = hub_with_small_repo();
    let content = file("model.safetensors");
    let sha = sha256(&content);
    for method in ["GET", "HEAD"] {
        let r = request(&hub.endpoint(), method, "/org/m/resolve/main/model.safetensors", &[]);
        assert_eq!(r.status, 302, "{method}");
        let location = format!("{}/lfs/{sha}", hub.cdn_endpoint());
        assert_eq!(r.header("location"), Some(location.as_str()));
        assert_eq!(r.header("x-linked-etag"), Some(format!("\"{sha}\"").as_str()));
        assert_eq!(r.header("x-linked-size"), Some(content.len().to_string().as_str()));
        assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()));
        let pointer_id = git_blob_id(lfs_pointer(&content).as_bytes());
        assert_eq!(r.header("etag"), Some(format!("\"{pointer_id}\"").as_str()));
        assert_eq!(r.content_length(), 0);
        assert!(r.body.is_empty());
    }
    // The CDN (and the hub origin too) serve the blob by sha256, with ranges.
    for base in [hub.cdn_endpoint(), hub.endpoint()] {
        let r = get(&base, &format!("/lfs/{sha}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("etag"), Some(format!("\"{sha}\"").as_str()));
        assert_eq!(r.content_length(), content.len());
        assert_eq!(r.body, content);
        let r = request(&base, "GET", &format!("/lfs/{sha}"), &[("Range", "bytes=100-199")]);
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some(format!("bytes 100-199/{}", content.len()).as_str()));
        assert_eq!(r.body, &content[100..200]);
    }
    // The CDN is only a CDN.
    assert_eq!(get(&hub.cdn_endpoint(), "/org/m/resolve/main/config.json").status, 404);
    assert_eq!(get(&hub.cdn_endpoint(), &format!("/lfs/{}", "0".repeat(64))).status, 404);
}

#[test]
fn lfs_rule_follows_extension_and_size() {
    let hub = TestHub::start();
    let big = vec![b'x'; 1 << 20];
    let below = vec![b'y'; (1 << 20) - 1];
    hub.add_commit(
        "org/m",
        vec![
            ("big.txt".into(), big),
            ("below.txt".into(), below),
            ("tokenizer.model".into(), b"sp".to_vec()),
            ("weights.gguf".into(), b"GGUF".to_vec()),
        ],
    );
    for (name, lfs) in [("big.txt", true), ("below.txt", false), ("tokenizer.model", true), ("weights.gguf", true)] {
        let r = request(&hub.endpoint(), "HEAD", &format!("/org/m/resolve/main/{name}"), &[]);
        assert_eq!(r.status, if lfs { 302 } else { 200 }, "{name}");
    }
}

#[test]
fn errors_carry_the_hub_error_codes() {
    let (hub, commit) = hub_with_small_repo();
    let ep = hub.endpoint();
    let code = |target: &str| {
        let r = get(&ep, target);
        (r.status, r.header("x-error-code").map(str::to_string))
    };
    let coded = |status, code: &str| (status, Some(code.to_string()));
    assert_eq!(code("/api/models/org/nope"), coded(404, "RepoNotFound"));
    assert_eq!(code("/api/models/org/nope/revision/main"), coded(404, "RepoNotFound"));
    assert_eq!(code("/org/nope/resolve/main/config.json"), coded(404, "RepoNotFound"));
    assert_eq!(code("/api/models/org/m/revision/nope"), coded(404, "RevisionNotFound"));
    assert_eq!(code("/org/m/resolve/nope/config.json"), coded(404, "RevisionNotFound"));
    assert_eq!(code(&format!("/org/m/resolve/{}/config.json", "f".repeat(40))), coded(404, "RevisionNotFound"));
    assert_eq!(code("/org/m/resolve/main/missing.txt"), coded(404, "EntryNotFound"));
    // The hub names the commit of a missing entry (huggingface_hub caches the miss under .no_exist/<commit>).
    assert_eq!(get(&ep, "/org/m/resolve/main/missing.txt").header("x-repo-commit"), Some(commit.as_str()));
    assert_eq!(code("/org/m/resolve/main/sub"), coded(404, "EntryNotFound"));
    let r = get(&ep, "/api/models/org/nope");
    assert_eq!(r.json()["error"], "Repository not found: org/nope");
    for target in ["/", "/favicon.ico", "/org/m", "/api/models", "/api/datasets/org/m", "/api/models/org/m/what"] {
        assert_eq!(get(&ep, target).status, 404, "{target}");
    }
    for target in ["/org/m/resolve/main/%zz", "/org/m/resolve/main/%ff.txt", "/api/models/org/m?blobs=%"] {
        assert_eq!(get(&ep, target).status, 400, "{target}");
    }
    assert_eq!(request(&ep, "DELETE", "/org/m/resolve/main/config.json", &[]).status, 404);
    // None of that hurt the server.
    assert_eq!(get(&ep, "/org/m/resolve/main/config.json").status, 200);
}

#[test]
fn model_info_lists_siblings_with_blobs() {
    let (hub, commit) = hub_with_small_repo();
    let info = get(&hub.endpoint(), "/api/models/org/m").json();
    assert_eq!(info["id"], "org/m");
    assert_eq!(info["modelId"], "org/m");
    assert_eq!(info["sha"], commit.as_str());
    assert_eq!(info["private"], false);
    assert!(info["lastModified"].is_string());
    let names: Vec<&str> =
        info["siblings"].as_array().unwrap().iter().map(|s| s["rfilename"].as_str().unwrap()).collect();
    assert_eq!(names, ["config.json", "model.safetensors", "sub/dir/notes.txt"]);
    assert!(info["siblings"][0].get("size").is_none(), "size only with blobs=true");

    let info = get(&hub.endpoint(), "/api/models/org/m/revision/main?blobs=true").json();
    let config = file("config.json");
    assert_eq!(
        info["siblings"][0],
        serde_json::json!({"rfilename": "config.json", "size": config.len(), "blobId": git_blob_id(&config)})
    );
    let model = file("model.safetensors");
    let pointer = lfs_pointer(&model);
    assert_eq!(
        info["siblings"][1],
        serde_json::json!({
            "rfilename": "model.safetensors",
            "size": model.len(),
            "blobId": git_blob_id(pointer.as_bytes()),
            "lfs": {"sha256": sha256(&model), "size": model.len(), "pointerSize": pointer.len()},
        })
    );
}

#[test]
fn revisions_resolve_branches_tags_and_commit_ids() {
    let hub = TestHub::start();
    let first = hub.add_commit("org/m", vec![("a.txt".into(), b"one".to_vec())]);
    let second = hub.add_commit("org/m", vec![("a.txt".into(), b"two".to_vec())]);
    hub.set_ref("org/m", "v1", &first);
    hub.set_ref("org/m", "refs/pr/1", &first);
    let ep = hub.endpoint();
    for (rev, commit, body) in [
        ("main", &second, "two"),
        ("v1", &first, "one"),
        ("refs%2Fpr%2F1", &first, "one"),
        (first.as_str(), &first, "one"),
        (second.as_str(), &second, "two"),
    ] {
        let r = get(&ep, &format!("/org/m/resolve/{rev}/a.txt"));
        assert_eq!((r.status, r.body.as_slice()), (200, body.as_bytes()), "{rev}");
        assert_eq!(r.header("x-repo-commit"), Some(commit.as_str()), "{rev}");
        assert_eq!(get(&ep, &format!("/api/models/org/m/revision/{rev}")).json()["sha"], commit.as_str(), "{rev}");
    }
    // A ref to a commit the repo lacks is a revision that does not exist.
    hub.set_ref("org/m", "broken", &"0".repeat(40));
    assert_eq!(get(&ep, "/org/m/resolve/broken/a.txt").header("x-error-code"), Some("RevisionNotFound"));
}

#[test]
fn single_segment_repo_ids_work() {
    let hub = TestHub::start();
    let commit = hub.add_commit("gpt2", vec![("config.json".into(), b"{}".to_vec())]);
    assert_eq!(get(&hub.endpoint(), "/api/models/gpt2").json()["sha"], commit.as_str());
    assert_eq!(get(&hub.endpoint(), "/api/models/gpt2/revision/main").json()["id"], "gpt2");
    assert_eq!(get(&hub.endpoint(), "/gpt2/resolve/main/config.json").body, b"{}");
}

#[test]
fn tree_and_paths_info_list_files_and_folders() {
    let (hub, commit) = hub_with_small_repo();
    let ep = hub.endpoint();
    let paths = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}:{}", e["type"].as_str().unwrap(), e["path"].as_str().unwrap()))
            .collect()
    };
    let all = get(&ep, &format!("/api/models/org/m/tree/{commit}?recursive=true&expand=false")).json();
    assert_eq!(
        paths(all.clone()),
        ["directory:sub", "directory:sub/dir", "file:config.json", "file:model.safetensors", "file:sub/dir/notes.txt"]
    );
    let model = file("model.safetensors");
    let entry = all.as_array().unwrap().iter().find(|e| e["path"] == "model.safetensors").unwrap();
    let pointer = lfs_pointer(&model);
    assert_eq!(entry["oid"], git_blob_id(pointer.as_bytes()));
    assert_eq!(entry["size"], model.len());
    assert_eq!(
        entry["lfs"],
        serde_json::json!({"oid": sha256(&model), "size": model.len(), "pointerSize": pointer.len()})
    );
    assert_eq!(
        paths(get(&ep, "/api/models/org/m/tree/main").json()),
        ["directory:sub", "file:config.json", "file:model.safetensors"]
    );
    assert_eq!(paths(get(&ep, "/api/models/org/m/tree/main/sub/dir").json()), ["file:sub/dir/notes.txt"]);
    assert_eq!(
        paths(get(&ep, "/api/models/org/m/tree/main/sub?recursive=1").json()),
        ["directory:sub/dir", "file:sub/dir/notes.txt"]
    );
    assert_eq!(get(&ep, "/api/models/org/m/tree/main/nope").header("x-error-code"), Some("EntryNotFound"));
    assert_eq!(get(&ep, "/api/models/org/m/tree/nope").header("x-error-code"), Some("RevisionNotFound"));

    let mut stream = TcpStream::connect(util::addr(&ep)).unwrap();
    let body = "paths=config.json&paths=sub&paths=missing&expand=false";
    let req = format!(
        "POST /api/models/org/m/paths-info/main HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    std::io::Write::write_all(&mut stream, req.as_bytes()).unwrap();
    let mut raw = String::new();
    std::io::Read::read_to_string(&mut stream, &mut raw).unwrap();
    let json: serde_json::Value = serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(paths(json), ["file:config.json", "directory:sub"]);
}

#[test]
fn fail_once_truncates_one_body_then_serves_normally() {
    let (hub, _) = hub_with_small_repo();
    let ep = hub.endpoint();
    let content = file("config.json");
    hub.fail_once("org/m", "config.json", 7);
    // HEAD and a body no longer than the cut do not use the fault up.
    assert_eq!(request(&ep, "HEAD", "/org/m/resolve/main/config.json", &[]).status, 200);
    let probe = request(&ep, "GET", "/org/m/resolve/main/config.json", &[("Range", "bytes=0-0")]);
    assert_eq!(probe.body, &content[..1]);
    let cut = get(&ep, "/org/m/resolve/main/config.json");
    assert_eq!(cut.status, 200);
    assert_eq!(cut.content_length(), content.len(), "the head promises the whole file");
    assert_eq!(cut.body, &content[..7], "exactly after_bytes bytes arrive");
    assert_eq!(get(&ep, "/org/m/resolve/main/config.json").body, content);

    // LFS: the cut hits the CDN GET, on a range too, counted from the range's start.
    let model = file("model.safetensors");
    let sha = sha256(&model);
    hub.fail_once("org/m", "model.safetensors", 1000);
    let r = request(&hub.cdn_endpoint(), "GET", &format!("/lfs/{sha}"), &[("Range", "bytes=100-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.content_length(), model.len() - 100);
    assert_eq!(r.body, &model[100..1100]);
    assert_eq!(get(&hub.cdn_endpoint(), &format!("/lfs/{sha}")).body, model);

    // A cut at 0 sends the head alone.
    hub.fail_once("org/m", "sub/dir/notes.txt", 0);
    let r = get(&ep, "/org/m/resolve/main/sub/dir/notes.txt");
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn corrupt_flips_exactly_one_byte_and_keeps_the_metadata() {
    let (hub, _) = hub_with_small_repo();
    let model = file("model.safetensors");
    let sha = sha256(&model);
    hub.corrupt("org/m", "model.safetensors", 1234);
    let body = get(&hub.cdn_endpoint(), &format!("/lfs/{sha}")).body;
    assert_eq!(body.len(), model.len());
    let diffs: Vec<usize> = (0..model.len()).filter(|&i| body[i] != model[i]).collect();
    assert_eq!(diffs, [1234]);
    // Ranges see the flip at the same file offset, or not at all.
    let r = request(&hub.cdn_endpoint(), "GET", &format!("/lfs/{sha}"), &[("Range", "bytes=1230-1239")]);
    assert_eq!(r.body, &body[1230..1240]);
    let r = request(&hub.cdn_endpoint(), "GET", &format!("/lfs/{sha}"), &[("Range", "bytes=0-99")]);
    assert_eq!(r.body, &model[..100]);
    // The redirect and the listing still describe the true content.
    let head = request(&hub.endpoint(), "HEAD", "/org/m/resolve/main/model.safetensors", &[]);
    assert_eq!(head.header("x-linked-etag"), Some(format!("\"{sha}\"").as_str()));
    let info = get(&hub.endpoint(), "/api/models/org/m?blobs=true").json();
    assert_eq!(info["siblings"][1]["lfs"]["sha256"], sha.as_str());

    let config = file("config.json");
    hub.corrupt("org/m", "config.json", 0);
    let r = get(&hub.endpoint(), "/org/m/resolve/main/config.json");
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", git_blob_id(&config)).as_str()));
    assert_eq!(r.body[0], !config[0]);
    assert_eq!(r.body[1..], config[1..]);
}

#[test]
fn connections_are_counted_at_accept() {
    let (hub, _) = hub_with_small_repo();
    assert_eq!(hub.connections(), 0);
    // A connection that never sends a byte counts; the listener accepts in order, so by the time the
    // second connection is answered the first was accepted.
    let idle = TcpStream::connect(util::addr(&hub.endpoint())).unwrap();
    assert_eq!(get(&hub.endpoint(), "/api/models/org/m").status, 200);
    assert_eq!(hub.connections(), 2);
    drop(idle);
    // Keep-alive: three requests, one connection.
    let mut stream = TcpStream::connect(util::addr(&hub.endpoint())).unwrap();
    for _ in 0..3 {
        assert_eq!(request_on(&mut stream, "GET", "/org/m/resolve/main/config.json").status, 200);
    }
    assert_eq!(hub.connections(), 3);
    // The CDN's connections count too.
    let sha = sha256(&file("model.safetensors"));
    assert_eq!(get(&hub.cdn_endpoint(), &format!("/lfs/{sha}")).status, 200);
    assert_eq!(hub.connections(), 4);
}

#[test]
fn requests_are_logged_with_query_and_range() {
    let (hub, _) = hub_with_small_repo();
    let sha = sha256(&file("model.safetensors"));
    get(&hub.endpoint(), "/api/models/org/m/revision/main?blobs=true");
    request(&hub.cdn_endpoint(), "GET", &format!("/lfs/{sha}"), &[("Range", "bytes=10-")]);
    request(&hub.endpoint(), "HEAD", "/org/m/resolve/refs%2Fpr%2F1/a%20b.txt", &[]);
    assert_eq!(
        hub.requests(),
        [
            "GET /api/models/org/m/revision/main?blobs=true".to_string(),
            format!("GET /lfs/{sha} range=bytes=10-"),
            "HEAD /org/m/resolve/refs%2Fpr%2F1/a%20b.txt".to_string(),
        ]
    );
}

#[test]
fn require_token_gates_the_repo_but_not_the_cdn() {
    let (hub, _) = hub_with_small_repo();
    hub.require_token("org/m", "hf_secret");
    let ep = hub.endpoint();
    for target in ["/api/models/org/m", "/org/m/resolve/main/config.json", "/api/models/org/m/tree/main"] {
        let r = get(&ep, target);
        assert_eq!((r.status, r.header("x-error-code")), (401, Some("GatedRepo")), "{target}");
        let r = request(&ep, "GET", target, &[("Authorization", "Bearer wrong")]);
        assert_eq!((r.status, r.header("x-error-code")), (403, Some("GatedRepo")), "{target}");
        let r = request(&ep, "GET", target, &[("Authorization", "Bearer hf_secret")]);
        assert_eq!(r.status, 200, "{target}");
    }
    let r = request(&ep, "GET", "/org/m/resolve/main/model.safetensors", &[("Authorization", "Bearer hf_secret")]);
    assert_eq!(r.status, 302);
    let location = r.header("location").unwrap();
    let path = location.strip_prefix(&hub.cdn_endpoint()).unwrap();
    assert_eq!(get(&hub.cdn_endpoint(), path).status, 200, "the CDN URL works without a token, like a signed URL");
}

#[test]
fn hostile_listing_entries_are_listed_and_served() {
    let (hub, commit) = hub_with_small_repo();
    for name in ["../evil.txt", "/etc/evil", "a/../../b"] {
        hub.add_listing_entry("org/m", name, format!("evil {name}").into_bytes());
    }
    let info = get(&hub.endpoint(), "/api/models/org/m").json();
    assert_eq!(info["sha"], commit.as_str(), "the commit id does not change");
    let names: Vec<&str> =
        info["siblings"].as_array().unwrap().iter().map(|s| s["rfilename"].as_str().unwrap()).collect();
    for name in ["../evil.txt", "/etc/evil", "a/../../b"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    for (target, name) in [
        ("/org/m/resolve/main/../evil.txt", "../evil.txt"),
        ("/org/m/resolve/main/..%2Fevil.txt", "../evil.txt"),
        ("/org/m/resolve/main//etc/evil", "/etc/evil"),
        ("/org/m/resolve/main/a/../../b", "a/../../b"),
    ] {
        let r = get(&hub.endpoint(), target);
        assert_eq!((r.status, r.body), (200, format!("evil {name}").into_bytes()), "{target}");
    }
}

#[test]
fn add_dir_names_files_relative_with_slashes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("top.json"), b"{}").unwrap();
    std::fs::write(dir.path().join("a/b/deep.bin"), b"weights").unwrap();
    std::os::unix::fs::symlink("top.json", dir.path().join("link.json")).unwrap();
    let hub = TestHub::start();
    let commit = hub.add_dir("org/d", dir.path()).unwrap();
    let info = get(&hub.endpoint(), "/api/models/org/d").json();
    assert_eq!(info["sha"], commit.as_str());
    assert_eq!(info["siblings"], serde_json::json!([{"rfilename": "a/b/deep.bin"}, {"rfilename": "top.json"}]));
    assert!(hub.add_dir("org/d", &dir.path().join("missing")).is_err());
}

#[test]
fn dropping_the_hub_closes_its_connections() {
    let hub = TestHub::start();
    let mut open = TcpStream::connect(util::addr(&hub.endpoint())).unwrap();
    assert_eq!(request_on(&mut open, "GET", "/nothing").status, 404);
    drop(hub);
    // The server side of the keep-alive connection is gone: EOF (or a reset), not a hang.
    let mut buf = [0; 1];
    assert!(matches!(std::io::Read::read(&mut open, &mut buf), Ok(0) | Err(_)));
}
