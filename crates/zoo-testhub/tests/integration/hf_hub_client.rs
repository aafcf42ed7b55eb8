//! The real hf-hub 0.5 sync client (ureq) against the hub: downloads, cache layout, info, revisions, tokens,
//! and what its resume does with `fail_once`.

use std::path::Path;

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Repo, RepoType};
use zoo_testhub::TestHub;

use crate::util::{assert_cached, read_ref, read_tree, sha256, tiny_llama};

fn api(hub: &TestHub, cache: &Path) -> ApiBuilder {
    ApiBuilder::new().with_endpoint(hub.endpoint()).with_cache_dir(cache.to_path_buf()).with_progress(false)
}

fn build(builder: ApiBuilder) -> Api {
    builder.build().expect("hf-hub api")
}

#[test]
fn hf_hub_downloads_the_fixture_into_the_standard_cache() {
    let fixture = read_tree(&tiny_llama());
    let hub = TestHub::start();
    let commit = hub.add_dir("org/tiny", &tiny_llama()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let repo = build(api(&hub, cache.path())).model("org/tiny".into());

    for name in ["model.safetensors", "config.json"] {
        let path = repo.download(name).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), fixture[name], "{name}");
    }
    let repo_dir = cache.path().join("models--org--tiny");
    assert_cached(&repo_dir, &commit, "model.safetensors", &fixture["model.safetensors"], true);
    assert_cached(&repo_dir, &commit, "config.json", &fixture["config.json"], false);
    assert_eq!(read_ref(&repo_dir, "main"), commit);

    let info = repo.info().unwrap();
    assert_eq!(info.sha, commit);
    let names: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let want: Vec<&str> = fixture.keys().map(String::as_str).collect();
    assert_eq!(names, want);

    let sha = sha256(&fixture["model.safetensors"]);
    let log = hub.requests();
    for line in [
        "GET /org/tiny/resolve/main/model.safetensors range=bytes=0-0".to_string(),
        format!("GET /lfs/{sha} range=bytes=0-0"),
        format!("GET /lfs/{sha} range=bytes=0-"),
        "GET /org/tiny/resolve/main/config.json range=bytes=0-".to_string(),
        "GET /api/models/org/tiny/revision/main".to_string(),
    ] {
        assert!(log.contains(&line), "{line} not in {log:#?}");
    }
}

#[test]
fn hf_hub_follows_tags_and_commit_ids() {
    let hub = TestHub::start();
    let old = hub.add_commit("org/m", vec![("config.json".into(), b"{\"v\": 1}".to_vec())]);
    hub.set_ref("org/m", "v1", &old);
    let new = hub.add_commit("org/m", vec![("config.json".into(), b"{\"v\": 2}".to_vec())]);
    let cache = tempfile::tempdir().unwrap();
    let api = build(api(&hub, cache.path()));
    let repo_dir = cache.path().join("models--org--m");

    let tagged = api.repo(Repo::with_revision("org/m".into(), RepoType::Model, "v1".into()));
    assert_eq!(std::fs::read(tagged.download("config.json").unwrap()).unwrap(), b"{\"v\": 1}");
    assert_eq!(read_ref(&repo_dir, "v1"), old);
    let by_id = api.repo(Repo::with_revision("org/m".into(), RepoType::Model, new.clone()));
    assert_eq!(std::fs::read(by_id.download("config.json").unwrap()).unwrap(), b"{\"v\": 2}");
    assert_cached(&repo_dir, &new, "config.json", b"{\"v\": 2}", false);
    assert_eq!(tagged.info().unwrap().sha, old);
}

#[test]
fn hf_hub_needs_the_token_of_a_gated_repo() {
    let hub = TestHub::start();
    hub.add_commit("org/m", vec![("model.safetensors".into(), vec![1; 300])]);
    hub.require_token("org/m", "hf_secret");
    let cache = tempfile::tempdir().unwrap();
    let without = build(api(&hub, cache.path()).with_token(None)).model("org/m".into());
    let err = without.download("model.safetensors").unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(without.info().is_err());
    let with = build(api(&hub, cache.path()).with_token(Some("hf_secret".into()))).model("org/m".into());
    assert_eq!(std::fs::read(with.download("model.safetensors").unwrap()).unwrap(), vec![1; 300]);
}

#[test]
fn hf_hub_resumes_after_fail_once_with_a_range_request() {
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let hub = TestHub::start();
    hub.add_commit("org/m", vec![("model.safetensors".into(), content.clone())]);
    hub.fail_once("org/m", "model.safetensors", 50_000);
    let cache = tempfile::tempdir().unwrap();

    // Without retries the cut surfaces as an error and the part file keeps what arrived.
    let no_retry = build(api(&hub, cache.path())).model("org/m".into());
    assert!(no_retry.download("model.safetensors").is_err());
    let part = cache.path().join(format!("models--org--m/blobs/{}.part", sha256(&content)));
    assert_eq!(std::fs::read(&part).unwrap(), &content[..50_000]);

    // The next download resumes from the part file.
    let path = no_retry.download("model.safetensors").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), content);
    let sha = sha256(&content);
    assert!(hub.requests().contains(&format!("GET /lfs/{sha} range=bytes=50000-")), "{:#?}", hub.requests());
}

#[test]
fn hf_hub_does_not_notice_a_corrupted_blob() {
    // A fact the downloader's own verification exists for: hf-hub 0.5 stores what it got.
    let content = vec![9; 4096];
    let hub = TestHub::start();
    hub.add_commit("org/m", vec![("model.safetensors".into(), content.clone())]);
    hub.corrupt("org/m", "model.safetensors", 100);
    let cache = tempfile::tempdir().unwrap();
    let path = build(api(&hub, cache.path())).model("org/m".into()).download("model.safetensors").unwrap();
    let got = std::fs::read(path).unwrap();
    assert_ne!(sha256(&got), sha256(&content));
    assert_eq!((0..content.len()).filter(|&i| got[i] != content[i]).collect::<Vec<_>>(), [100]);
}
