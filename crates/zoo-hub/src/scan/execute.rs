//! Carrying out a [`DeletePlan`] inside the cache root. **Invariant:** every path is checked
//! (strictly inside the root, no link on the way) before the first removal, links are removed
//! as links, and nothing is ever followed out of the cache.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use super::{DeletePlan, file_key, list_dir};
use crate::error::{HubError, Result};

/// Carries out `plan` inside the cache at `root` and returns the bytes of the regular files
/// removed (a file with several names inside the removed set counted once).
///
/// Every path is checked before anything is removed: it must lie strictly inside `root`
/// (compared lexically, `..` refused) and no folder between `root` and it may be a link;
/// otherwise nothing is removed and the error is [`HubError::Hostile`]. Links are removed as
/// links, folders with their content (never following links), paths already gone are skipped.
/// Folders left empty by the removals are removed too, up to the repo folder.
pub fn execute(plan: &DeletePlan, root: &Path) -> Result<u64> {
    let abs_root = std::path::absolute(root).map_err(HubError::io(root, "resolve"))?;
    let mut checked = Vec::with_capacity(plan.paths.len());
    for path in &plan.paths {
        let rel = inside_root(&abs_root, path)?;
        parents_are_real_dirs(&abs_root, &rel)?;
        checked.push(rel);
    }
    let mut seen = HashSet::new();
    let mut freed = 0;
    for rel in &checked {
        // Again: an earlier removal may have emptied the way (then the path is gone too).
        if parents_are_real_dirs(&abs_root, rel)? {
            freed += remove_tree(&abs_root.join(rel), &mut seen)?;
        }
    }
    for rel in &checked {
        remove_empty_parents(&abs_root, rel);
    }
    Ok(freed)
}

/// `path` relative to `abs_root`, when it is strictly inside it with only plain components.
fn inside_root(abs_root: &Path, path: &Path) -> Result<PathBuf> {
    let refuse = |reason: &str| HubError::Hostile { what: path.display().to_string(), reason: reason.to_string() };
    let abs = std::path::absolute(path).map_err(HubError::io(path, "resolve"))?;
    let rel = abs.strip_prefix(abs_root).map_err(|_| refuse("not inside the cache"))?;
    if rel.as_os_str().is_empty() {
        return Err(refuse("is the cache itself"));
    }
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(refuse("has `..` or other non-plain components"));
    }
    Ok(rel.to_path_buf())
}

/// True when every folder between `abs_root` and `rel` exists and is a real folder; false when
/// one is missing (the path is already gone); a link or a file there is refused.
fn parents_are_real_dirs(abs_root: &Path, rel: &Path) -> Result<bool> {
    let mut dir = abs_root.to_path_buf();
    let parents: Vec<_> = rel.components().collect();
    for c in &parents[..parents.len().saturating_sub(1)] {
        dir.push(c);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(HubError::Hostile {
                    what: abs_root.join(rel).display().to_string(),
                    reason: format!("{} is a link or a file, not a folder", dir.display()),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(HubError::Io { path: dir, op: "stat", source: e }),
        }
    }
    Ok(true)
}

/// Removes `path` (a link as a link, a folder with its content, never following links) and
/// returns the bytes of the regular files removed that were not `seen` before.
fn remove_tree(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(HubError::Io { path: path.to_path_buf(), op: "stat", source: e }),
    };
    if meta.is_dir() {
        let mut freed = 0;
        for (_, child) in list_dir(path).map_err(HubError::io(path, "read dir"))? {
            freed += remove_tree(&child, seen)?;
        }
        std::fs::remove_dir(path).map_err(HubError::io(path, "remove dir"))?;
        return Ok(freed);
    }
    std::fs::remove_file(path).map_err(HubError::io(path, "remove"))?;
    let counted = meta.is_file() && file_key(&meta).is_none_or(|k| seen.insert(k));
    Ok(if counted { meta.len() } else { 0 })
}

/// Removes the folders above `rel` that are now empty, stopping below `abs_root`.
fn remove_empty_parents(abs_root: &Path, rel: &Path) {
    let mut parent = rel.parent();
    while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
        // Fails (and stops the climb) when the folder still holds something or is gone.
        if std::fs::remove_dir(abs_root.join(p)).is_err() {
            break;
        }
        parent = p.parent();
    }
}
