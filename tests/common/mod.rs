//! Helpers shared by the end-to-end test binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A file or folder of `../shared/fixtures`; a missing one fails with a hint, never skips.
pub fn fixture(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures").join(rel);
    assert!(p.exists(), "missing fixture {}: the tests need ../shared/fixtures (see its README.md)", p.display());
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
