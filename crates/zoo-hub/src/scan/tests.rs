//! Tests of scanning, planning and executing on a hand-made cache (unix: links).

use super::*;
use crate::hash::{CheckStatus, FileToCheck, check_files, expected_from_blob_name};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::os::unix::fs::symlink;
use zoo_progress::{CancelToken, Silent};

const C1: &str = "1111111111111111111111111111111111111111";
const C2: &str = "2222222222222222222222222222222222222222";
const D1: &str = "dddddddddddddddddddddddddddddddddddddddd";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
fn sha256(c: &[u8]) -> String {
    hex(&Sha256::digest(c))
}
fn git_sha1(c: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", c.len()).as_bytes());
    h.update(c);
    hex(&h.finalize())
}

/// A hand-made cache under `<tmp>/hub` with `<tmp>/outside-file` next to it.
struct Fixture {
    tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    /// Blob names: shared by both revisions, git-sha1 config, only in the detached
    /// revision, unreferenced, and the partial download.
    a: String,
    b: String,
    c: String,
    d: String,
    partial: String,
}

const A: &[u8] = &[7u8; 1000];
const B: &[u8] = b"{\"model_type\": \"llama\"}\n";
const C: &[u8] = &[9u8; 300];
const D: &[u8] = &[1u8; 50];
const E: &[u8] = b"partial";
const README: &[u8] = b"copy!";

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("hub");
    let repo = root.join("models--org--model");
    let (a, b, c, d) = (sha256(A), git_sha1(B), sha256(C), sha256(D));
    let partial = format!("{}.incomplete", sha256(b"whole file"));
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    for (name, content) in [(&a, A), (&b, B), (&c, C), (&d, D), (&partial, E)] {
        std::fs::write(repo.join("blobs").join(name), content).unwrap();
    }
    let s1 = repo.join("snapshots").join(C1);
    let s2 = repo.join("snapshots").join(C2);
    std::fs::create_dir_all(s1.join("sub")).unwrap();
    std::fs::create_dir_all(&s2).unwrap();
    symlink(format!("../../blobs/{a}"), s1.join("model.bin")).unwrap();
    symlink(format!("../../blobs/{b}"), s1.join("config.json")).unwrap();
    symlink(format!("../../../blobs/{b}"), s1.join("sub/config.json")).unwrap();
    std::fs::write(s1.join("README.md"), README).unwrap();
    symlink(format!("../../blobs/{a}"), s2.join("model.bin")).unwrap();
    symlink(format!("../../blobs/{c}"), s2.join("extra.bin")).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{C1}\n")).unwrap();
    std::fs::create_dir_all(repo.join(".no_exist").join(C2)).unwrap();
    std::fs::write(repo.join(".no_exist").join(C2).join("tokenizer.model"), b"").unwrap();

    // Hostile entries.
    std::fs::write(tmp.path().join("outside-file"), b"keep me").unwrap();
    symlink("/etc/hostname", s1.join("hostname")).unwrap();
    symlink("../../../../outside-file", s1.join("escape")).unwrap();
    symlink(format!("../blobs/{a}"), s1.join("sub/short")).unwrap();
    symlink("../../blobs/../../../outside-file", s1.join("dotdot")).unwrap();
    std::fs::write(repo.join("refs/evil"), "../../x").unwrap();

    // A dataset, a link to another repo's blob, and folders that are not repos.
    let data = root.join("datasets--org--data");
    let data_blob = sha256(b"rows");
    std::fs::create_dir_all(data.join("blobs")).unwrap();
    std::fs::create_dir_all(data.join("snapshots").join(D1)).unwrap();
    std::fs::create_dir_all(data.join("refs/pr")).unwrap();
    std::fs::write(data.join("blobs").join(&data_blob), b"rows").unwrap();
    symlink(format!("../../blobs/{data_blob}"), data.join("snapshots").join(D1).join("rows.csv")).unwrap();
    std::fs::write(data.join("refs/pr/1"), D1).unwrap();
    std::fs::write(data.join("refs/v1+cpu"), D1).unwrap();
    symlink(format!("../../../models--org--model/blobs/{a}"), data.join("snapshots").join(D1).join("stolen")).unwrap();
    std::fs::create_dir_all(root.join("not-a-repo")).unwrap();
    std::fs::create_dir_all(root.join(".locks/models--org--model")).unwrap();
    std::fs::create_dir_all(tmp.path().join("elsewhere/snapshots")).unwrap();
    symlink(tmp.path().join("elsewhere"), root.join("models--evil--link")).unwrap();
    Fixture { tmp, root, repo, a, b, c, d, partial }
}

/// Bytes of `refs/main` (a commit id and a newline) and of the hostile `refs/evil`.
const MAIN_REF: u64 = 41;
const EVIL_REF: u64 = 7;

fn sizes() -> (u64, u64, u64, u64, u64, u64) {
    let l = |s: &[u8]| s.len() as u64;
    (l(A), l(B), l(C), l(D), l(E), l(README))
}

#[test]
fn scan_counts_shared_blobs_once_and_lists_leftovers() {
    let f = fixture();
    let info = scan(&f.root).unwrap();
    let (a, b, c, _, _, readme) = sizes();
    assert_eq!(info.repos.len(), 2, "{:?}", info.repos.iter().map(|r| &r.repo_id).collect::<Vec<_>>());
    let repo = info.repo("org/model").unwrap();
    assert_eq!((repo.repo_type, repo.path.as_path()), (RepoType::Model, f.repo.as_path()));
    assert_eq!(repo.size_on_disk, a + b + c + readme);
    assert_eq!(repo.nb_files, 4);
    assert_eq!(repo.refs, BTreeMap::from([("main".to_string(), C1.to_string())]));
    assert_eq!(repo.unreferenced_blobs, vec![f.repo.join("blobs").join(&f.d)]);
    assert_eq!(repo.incomplete, vec![f.repo.join("blobs").join(&f.partial)]);

    let [r1, r2] = repo.revisions.as_slice() else { panic!("two revisions: {:?}", repo.revisions) };
    assert_eq!((r1.commit.as_str(), r1.refs.clone()), (C1, vec!["main".to_string()]));
    let names = |r: &CachedRevision| r.files.iter().map(|f| f.rel_path.clone()).collect::<Vec<_>>();
    assert_eq!(names(r1), ["README.md", "config.json", "model.bin", "sub/config.json"]);
    assert_eq!(r1.size_on_disk, a + b + readme);
    assert_eq!((r2.commit.as_str(), r2.refs.len()), (C2, 0));
    assert_eq!(names(r2), ["extra.bin", "model.bin"]);
    assert_eq!(r2.size_on_disk, a + c);
    let model = &r1.files[2];
    assert_eq!(model.blob_name.as_deref(), Some(f.a.as_str()));
    assert_eq!(model.blob_path.as_deref(), Some(f.repo.join("blobs").join(&f.a).as_path()));
    assert_eq!(model.size, a);
    assert_eq!((r1.files[0].blob_path.as_ref(), r1.files[0].size), (None, readme));

    let data = info.repo("org/data").unwrap();
    assert_eq!((data.repo_type, data.size_on_disk, data.nb_files), (RepoType::Dataset, 4, 1));
    let refs = [("pr/1", D1), ("v1+cpu", D1)].map(|(n, c)| (n.to_string(), c.to_string()));
    assert_eq!(data.refs, BTreeMap::from(refs));
    assert_eq!(data.revisions[0].refs, ["pr/1", "v1+cpu"]);
    assert_eq!(info.repo("datasets--org--data").map(|r| &r.repo_id), Some(&data.repo_id));
    assert_eq!(info.size_on_disk, repo.size_on_disk + 4);

    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["repos"][0]["repo_type"], "model");
    assert_eq!(json["repos"][1]["repo_type"], "dataset");
}

#[test]
fn hostile_entries_are_warned_about_and_skipped() {
    let f = fixture();
    let info = scan(&f.root).unwrap();
    let s1 = f.repo.join("snapshots").join(C1);
    for path in [
        s1.join("hostname"),
        s1.join("escape"),
        s1.join("sub/short"),
        s1.join("dotdot"),
        f.repo.join("refs/evil"),
        f.root.join("datasets--org--data/snapshots").join(D1).join("stolen"),
        f.root.join("not-a-repo"),
        f.root.join("models--evil--link"),
    ] {
        let needle = format!("{}:", path.display());
        assert!(info.warnings.iter().any(|w| w.starts_with(&needle)), "no warning for {needle}: {:#?}", info.warnings);
    }
    assert_eq!(info.warnings.len(), 8, "{:#?}", info.warnings);
    assert!(info.repo("evil/link").is_none());
    let files: Vec<&CachedFile> = info.repos.iter().flat_map(|r| &r.revisions).flat_map(|r| &r.files).collect();
    assert!(
        files.iter().all(|f| !["hostname", "escape", "sub/short", "dotdot", "stolen"].contains(&f.rel_path.as_str()))
    );
}

#[test]
fn folder_names_and_commit_ids_are_strict() {
    assert_eq!(parse_repo_folder("models--org--name"), Some((RepoType::Model, "org/name".into())));
    assert_eq!(parse_repo_folder("models--gpt2"), Some((RepoType::Model, "gpt2".into())));
    assert_eq!(parse_repo_folder("spaces--a--b.c_d-e"), Some((RepoType::Space, "a/b.c_d-e".into())));
    for bad in ["models--", "models--a--b--c", "models--..--x", "model--a--b", "models--a b--c", "models--a----b"] {
        assert_eq!(parse_repo_folder(bad), None, "{bad}");
    }
    assert!(is_commit(C1));
    for bad in ["../../x", &"A".repeat(40), &C1[1..], "main"] {
        assert!(!is_commit(bad), "{bad}");
    }
}

fn plan_paths(plan: &DeletePlan) -> Vec<PathBuf> {
    plan.paths.clone()
}

#[test]
fn plans_list_exact_paths_and_count_shared_blobs_once() {
    let f = fixture();
    let info = scan(&f.root).unwrap();
    let (a, b, c, d, e, readme) = sizes();
    let blob = |n: &str| f.repo.join("blobs").join(n);
    let snap = |c: &str| f.repo.join("snapshots").join(c);

    // The detached revision shares model.bin with main: only its own blob goes.
    let p = info.plan_remove_revisions("org/model", &[C2.to_string()]);
    let mut want = vec![snap(C2), f.repo.join(".no_exist").join(C2), blob(&f.c)];
    want.sort();
    assert_eq!((plan_paths(&p), p.freed_bytes, p.revisions.clone()), (want, c, vec![C2.to_string()]));

    let p = info.plan_remove_revisions("org/model", &[C1.to_string()]);
    let mut want = vec![snap(C1), f.repo.join("refs/main"), blob(&f.b)];
    want.sort();
    assert_eq!((plan_paths(&p), p.freed_bytes), (want, b + readme + MAIN_REF));

    let p = info.plan_remove_revisions("org/model", &[C1.to_string(), C2.to_string(), "f".repeat(40)]);
    let mut want = vec![
        snap(C1),
        snap(C2),
        f.repo.join(".no_exist").join(C2),
        f.repo.join("refs/main"),
        blob(&f.a),
        blob(&f.b),
        blob(&f.c),
    ];
    want.sort();
    assert_eq!((plan_paths(&p), p.freed_bytes), (want, a + b + c + readme + MAIN_REF));
    assert_eq!(p.revisions, [C1, C2]);
    assert!(info.plan_remove_revisions("org/nothing", &[C1.to_string()]).is_empty());

    let p = info.plan_prune();
    let mut want = vec![snap(C2), f.repo.join(".no_exist").join(C2), blob(&f.c), blob(&f.d), blob(&f.partial)];
    want.sort();
    assert_eq!((plan_paths(&p), p.freed_bytes), (want, c + d + e));

    let p = info.plan_remove_repo("org/model").unwrap();
    let all = a + b + c + d + e + readme + MAIN_REF + EVIL_REF;
    assert_eq!((plan_paths(&p), p.freed_bytes), (vec![f.repo.clone()], all));
    assert_eq!((p.repos.clone(), p.revisions.len()), (vec!["org/model".to_string()], 2));
    assert!(info.plan_remove_repo("org/nothing").is_none());
}

#[test]
fn prune_frees_what_it_planned_and_nothing_outside() {
    let f = fixture();
    let info = scan(&f.root).unwrap();
    let plan = info.plan_prune();
    assert_eq!(execute(&plan, &f.root).unwrap(), plan.freed_bytes);
    assert!(f.tmp.path().join("outside-file").exists());
    let after = scan(&f.root).unwrap();
    let repo = after.repo("org/model").unwrap();
    assert_eq!(repo.revisions.iter().map(|r| r.commit.as_str()).collect::<Vec<_>>(), [C1]);
    assert!(repo.unreferenced_blobs.is_empty() && repo.incomplete.is_empty());
    assert!(!f.repo.join(".no_exist").exists(), "emptied .no_exist is removed");
    assert_eq!(repo.size_on_disk, info.repo("org/model").unwrap().revisions[0].size_on_disk);
    assert!(after.plan_prune().is_empty());
}

#[test]
fn removing_every_revision_and_then_the_repo_leaves_the_outside_alone() {
    let f = fixture();
    let info = scan(&f.root).unwrap();
    let plan = info.plan_remove_revisions("org/model", &[C1.to_string(), C2.to_string()]);
    assert_eq!(execute(&plan, &f.root).unwrap(), plan.freed_bytes);
    assert!(!f.repo.join("snapshots").exists(), "an emptied snapshots/ folder is removed");
    assert!(f.repo.join("blobs").join(&f.d).exists(), "unreferenced blob is not part of this plan");

    let info = scan(&f.root).unwrap();
    let plan = info.plan_remove_repo("org/model").unwrap();
    let (_, _, _, d, e, _) = sizes();
    assert_eq!(plan.freed_bytes, d + e + EVIL_REF);
    assert_eq!(execute(&plan, &f.root).unwrap(), d + e + EVIL_REF);
    assert!(!f.repo.exists());
    assert!(f.tmp.path().join("outside-file").exists());
    assert!(f.root.join("datasets--org--data").exists());
    // The dataset's link into the removed repo is now broken and still not followed.
    let info = scan(&f.root).unwrap();
    assert_eq!(info.repos.len(), 1);
}

#[test]
fn removing_a_repo_with_hostile_links_removes_links_not_targets() {
    let f = fixture();
    let info = scan(&f.root).unwrap();
    let plan = info.plan_remove_repo("org/model").unwrap();
    assert_eq!(execute(&plan, &f.root).unwrap(), plan.freed_bytes);
    assert!(!f.repo.exists());
    assert_eq!(std::fs::read(f.tmp.path().join("outside-file")).unwrap(), b"keep me");
}

#[test]
fn execute_refuses_paths_outside_the_root_or_through_links() {
    let f = fixture();
    let outside = f.tmp.path().join("outside-file");
    let elsewhere = f.tmp.path().join("elsewhere/snapshots");
    for path in [
        outside.clone(),
        f.root.join("../outside-file"),
        f.root.join("models--org--model/../../outside-file"),
        f.root.clone(),
        PathBuf::from("/etc/hostname"),
        f.root.join("models--evil--link/snapshots"),
    ] {
        // A good path first: nothing at all may be removed when one path is refused.
        let plan = DeletePlan { paths: vec![f.repo.join("refs/main"), path.clone()], ..DeletePlan::default() };
        let err = execute(&plan, &f.root).unwrap_err();
        assert!(matches!(err, HubError::Hostile { .. }), "{}: {err}", path.display());
        assert!(f.repo.join("refs/main").exists());
    }
    assert!(outside.exists() && elsewhere.exists());

    // A hostile link itself may be removed: as a link.
    let link = f.repo.join("snapshots").join(C1).join("escape");
    let plan = DeletePlan { paths: vec![link.clone()], ..DeletePlan::default() };
    assert_eq!(execute(&plan, &f.root).unwrap(), 0);
    assert!(std::fs::symlink_metadata(&link).is_err());
    assert!(outside.exists());
    // Paths already gone are skipped.
    assert_eq!(execute(&plan, &f.root).unwrap(), 0);
}

#[test]
fn relative_roots_work_like_absolute_ones() {
    let f = fixture();
    let cwd = std::env::current_dir().unwrap();
    let rel_root = pathdiff(&f.root, &cwd);
    let info = scan(&rel_root).unwrap();
    let plan = info.plan_remove_revisions("org/model", &[C2.to_string()]);
    assert!(plan.paths.iter().all(|p| p.is_relative()));
    assert_eq!(execute(&plan, &rel_root).unwrap(), plan.freed_bytes);
    assert!(!f.repo.join("snapshots").join(C2).exists());
}

/// `path` relative to `base` (both absolute), with `..` as needed.
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out
}

#[test]
fn scanned_files_verify_by_blob_name() {
    let f = fixture();
    let info = scan(&f.root).unwrap();
    let rev = &info.repo("org/model").unwrap().revisions[0];
    let to_check = |rev: &CachedRevision| -> Vec<FileToCheck> {
        rev.files
            .iter()
            .map(|file| FileToCheck {
                label: file.rel_path.clone(),
                path: file.file_path.clone(),
                expected: file.blob_name.as_deref().and_then(expected_from_blob_name).into_iter().collect(),
                size: Some(file.size),
            })
            .collect()
    };
    let files = to_check(rev);
    assert!(check_files(&files, 2, &Silent, &CancelToken::new()).iter().all(CheckStatus::is_ok));

    // Flip one byte of the shared sha256 blob and of the git-sha1 blob.
    for name in [&f.a, &f.b] {
        let path = f.repo.join("blobs").join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, bytes).unwrap();
    }
    std::fs::remove_file(f.repo.join("blobs").join(&f.c)).unwrap();
    let got = check_files(&files, 2, &Silent, &CancelToken::new());
    let names: Vec<(&str, &str)> =
        files.iter().map(|f| f.label.as_str()).zip(got.iter().map(CheckStatus::name)).collect();
    assert_eq!(
        names,
        [("README.md", "ok"), ("config.json", "corrupt"), ("model.bin", "corrupt"), ("sub/config.json", "corrupt")]
    );
    assert_eq!(
        got[1],
        CheckStatus::Corrupt {
            expected: f.b.clone(),
            actual: git_sha1(&{
                let mut b = B.to_vec();
                b[0] ^= 1;
                b
            })
        }
    );

    // The missing blob's link is kept as a broken link, with a warning, and checks Missing.
    let info = scan(&f.root).unwrap();
    let detached = &info.repo("org/model").unwrap().revisions[1];
    let extra = detached.files.iter().find(|x| x.rel_path == "extra.bin").unwrap();
    assert_eq!(extra.size, 0);
    assert!(info.warnings.iter().any(|w| w.contains("broken link")));
    let got = check_files(&to_check(detached), 1, &Silent, &CancelToken::new());
    assert_eq!(got[0], CheckStatus::Missing);
}
