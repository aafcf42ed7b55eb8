//! Atomic output, in one place: a file (or a folder) is built under a temp name in the
//! destination's folder (`.NAME.zoo-tmp-PID`, same filesystem), fsync'ed, renamed onto the
//! destination, and the folder fsync'ed, so a reader sees the old destination or the whole new
//! one, never a part. A crash leaves at most the temp name, which says what it is and whose it
//! was; [`remove_stale`] (called by [`AtomicFile::create`]) removes those of dead processes.
//!
//! Entry points: [`write`] for bytes in memory, [`AtomicFile`] for streamed output,
//! [`symlink`] for links, [`publish`] for a temp file whose name a caller had to choose
//! (downloads resume under Python's `.incomplete` names), and [`temp_name`], [`old_name`],
//! [`sync_dir`], [`remove_stale`] for writers of whole folders.
//!
//! **Invariant:** every temp name this crate makes contains [`TEMP_MARK`] (see
//! [`is_temp_name`]), so cache scans can tell our leftovers from user files.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The part of every temp name that marks it as ours.
pub const TEMP_MARK: &str = ".zoo-tmp";

/// A failed file-system operation: the path it was done on, what it was, and why it failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {op}: {source}")]
pub struct Error {
    pub path: PathBuf,
    pub op: &'static str,
    #[source]
    pub source: io::Error,
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = path.to_path_buf();
    move |source| Error { path, op, source }
}

/// The temp name used for `dest` by process `pid`: `.NAME.zoo-tmp-PID` next to it; `None` when
/// `dest` has no (UTF-8) file name.
pub fn temp_name(dest: &Path, pid: u32) -> Option<PathBuf> {
    let name = dest.file_name()?.to_str()?;
    Some(dest.with_file_name(format!(".{name}{TEMP_MARK}-{pid}")))
}

/// The name an existing destination is moved aside to while a folder replaces it:
/// `.NAME.zoo-old-PID`.
pub fn old_name(dest: &Path, pid: u32) -> Option<PathBuf> {
    let name = dest.file_name()?.to_str()?;
    Some(dest.with_file_name(format!(".{name}.zoo-old-{pid}")))
}

/// Whether a file name is one of our temp names (of any process, for any destination).
pub fn is_temp_name(name: &str) -> bool {
    name.contains(TEMP_MARK)
}

/// The folder `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes temp files or folders for `dest` left by processes that no longer run (killed
/// with -9, power loss), and this process's own; those of other live processes stay. A
/// moved-aside old copy (`.NAME.zoo-old-PID`) goes only once `dest` is in place again.
/// Best effort: what cannot be read or removed is left.
pub fn remove_stale(dest: &Path) {
    let Some(name) = dest.file_name().and_then(|n| n.to_str()) else { return };
    let Ok(entries) = fs::read_dir(parent_of(dest)) else { return };
    let tmp_prefix = format!(".{name}{TEMP_MARK}-");
    let old_prefix = format!(".{name}.zoo-old-");
    let me = std::process::id();
    for e in entries.flatten() {
        let file_name = e.file_name();
        let Some(n) = file_name.to_str() else { continue };
        let (pid, is_old) = if let Some(p) = n.strip_prefix(&tmp_prefix) {
            (p, false)
        } else if let Some(p) = n.strip_prefix(&old_prefix) {
            (p, true)
        } else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if is_old && !dest.exists() {
            continue;
        }
        if pid == me || !pid_alive(pid) {
            let p = e.path();
            let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        }
    }
}

/// fsyncs a folder, so that the names created or renamed in it last.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(err(dir, "fsync"))
}

/// Publishes a finished temp file: fsync `file` (the open handle of `tmp`), close it, rename
/// `tmp` onto `dest` (replacing a file there), fsync the folder.
pub fn publish(file: File, tmp: &Path, dest: &Path) -> Result<()> {
    file.sync_all().map_err(err(tmp, "fsync"))?;
    drop(file);
    fs::rename(tmp, dest).map_err(err(dest, "rename into place"))?;
    sync_dir(parent_of(dest))
}

/// Removes a temp path when dropped, unless disarmed.
#[derive(Debug)]
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A file written under its temp name and published onto its destination by
/// [`commit`](Self::commit); dropped uncommitted, the temp file is removed and the
/// destination is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    dest: PathBuf,
    guard: TempGuard,
}

impl AtomicFile {
    /// Creates the destination's folder if needed, removes stale temp files for `dest`, and
    /// opens a fresh temp file for it.
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        let Some(tmp) = temp_name(dest, std::process::id()) else {
            return Err(Error {
                path: dest.to_path_buf(),
                op: "name a temp file",
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 file name"),
            });
        };
        let parent = parent_of(dest);
        fs::create_dir_all(parent).map_err(err(parent, "create folder"))?;
        remove_stale(dest);
        let file = File::create(&tmp).map_err(err(&tmp, "create"))?;
        Ok(AtomicFile { file, dest: dest.to_path_buf(), guard: TempGuard { path: tmp, armed: true } })
    }

    /// Where the bytes go until [`commit`](Self::commit).
    pub fn tmp_path(&self) -> &Path {
        &self.guard.path
    }

    /// Where the file will be.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// fsyncs the file, renames it onto the destination (replacing a file there), fsyncs the
    /// folder. On failure the temp file is removed.
    pub fn commit(self) -> Result<()> {
        let AtomicFile { file, dest, mut guard } = self;
        publish(file, &guard.path, &dest)?;
        guard.armed = false;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes `bytes` to `dest` atomically.
pub fn write(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    let tmp = f.tmp_path().to_path_buf();
    f.write_all(bytes).map_err(err(&tmp, "write"))?;
    f.commit()
}

/// Makes `dest` a symbolic link to `target` atomically (a link under the temp name, renamed
/// over whatever `dest` was). Where there are no symbolic links, `target` (relative to `dest`'s
/// folder) is copied instead.
pub fn symlink(target: &Path, dest: &Path) -> Result<()> {
    let Some(tmp) = temp_name(dest, std::process::id()) else {
        return Err(Error {
            path: dest.to_path_buf(),
            op: "name a temp link",
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 file name"),
        });
    };
    let _ = fs::remove_file(&tmp);
    let mut guard = TempGuard { path: tmp, armed: true };
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, &guard.path).map_err(err(&guard.path, "symlink"))?;
    #[cfg(not(unix))]
    fs::copy(parent_of(dest).join(target), &guard.path).map_err(err(&guard.path, "copy"))?;
    fs::rename(&guard.path, dest).map_err(err(dest, "rename into place"))?;
    guard.armed = false;
    sync_dir(parent_of(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn temp_names_are_marked_and_next_to_the_destination() {
        let t = temp_name(Path::new("out/model.gguf"), 42).unwrap();
        assert_eq!(t, Path::new("out/.model.gguf.zoo-tmp-42"));
        assert!(is_temp_name(&t.file_name().unwrap().to_string_lossy()));
        assert_eq!(old_name(Path::new("m"), 7).unwrap(), Path::new(".m.zoo-old-7"));
        assert!(!is_temp_name("model.safetensors"));
        assert_eq!(temp_name(Path::new("/"), 1), None);
    }

    #[test]
    fn write_replaces_whole_files_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/ref");
        write(&dest, b"first").unwrap();
        write(&dest, b"second").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"second");
        assert_eq!(names(&dir.path().join("sub")), ["ref"]);
    }

    #[test]
    fn an_uncommitted_file_leaves_the_destination_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.bin");
        fs::write(&dest, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"half of the new").unwrap();
            assert!(f.tmp_path().is_file());
        }
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out.bin"]);
    }

    #[test]
    fn stale_temps_of_dead_processes_go_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x");
        // pid 1 is alive everywhere; 4_999_999 is above any pid_max.
        let live = temp_name(&dest, 1).unwrap();
        let dead = temp_name(&dest, 4_999_999).unwrap();
        let dead_old = old_name(&dest, 4_999_999).unwrap();
        let other = temp_name(&dir.path().join("y"), 4_999_999).unwrap();
        for p in [&live, &dead, &other] {
            fs::write(p, b"x").unwrap();
        }
        fs::create_dir(&dead_old).unwrap();
        remove_stale(&dest);
        // The old copy waits for the destination.
        assert!(live.exists() && !dead.exists() && other.exists() && dead_old.exists());
        fs::write(&dest, b"new").unwrap();
        remove_stale(&dest);
        assert!(!dead_old.exists());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_replaced_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("link");
        symlink(Path::new("a"), &dest).unwrap();
        symlink(Path::new("b"), &dest).unwrap();
        assert_eq!(fs::read_link(&dest).unwrap(), Path::new("b"));
        assert_eq!(names(dir.path()), ["link"]);
    }
}
