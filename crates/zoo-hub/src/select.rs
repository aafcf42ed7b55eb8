//! Which files of a repo a pull takes.
//!
//! Rules, in order (written down in docs/HUB.md):
//! 1. `--include` globs, when given, keep only matching files; `--exclude` globs drop files.
//!    Globs follow Python's `fnmatch` as `huggingface_hub` uses it: `*` also matches `/`.
//! 2. Without `--include`, one copy of the weights: when the repo has `*.safetensors`, the
//!    other weight formats (PyTorch `.bin`/`.pt`/`.pth`/`.ckpt` and their index, TensorFlow,
//!    Flax, ONNX, Core ML, Rust `.ot`) are skipped; with PyTorch weights only, the other
//!    frameworks' files are skipped. A repo of several GGUF files is a menu, not a model:
//!    without `--include` the pull stops and names them.
//! 3. Files the registry records for the model are always taken and must be listed.

use crate::download::RemoteFile;
use crate::error::{HubError, Result};

/// Python `fnmatch.fnmatch` semantics (case-sensitive): `*`, `?`, `[seq]`, `[!seq]`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class(&p, pi, n[ni]) {
                        if matched {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` class at `p[start]`: whether `c` is in it and where the pattern goes on; `None`
/// when the bracket is not closed (then it is a literal `[`).
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = i < p.len() && p[i] == '!';
    if negate {
        i += 1;
    }
    let first = i;
    let mut hit = false;
    while i < p.len() && (p[i] != ']' || i == first) {
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                hit = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((hit != negate, i + 1))
}

/// What a pull takes, and what it leaves with the reason.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub files: Vec<RemoteFile>,
    pub skipped: Vec<(String, &'static str)>,
}

const PYTORCH: &[&str] = &[".bin", ".pt", ".pth", ".ckpt"];
const OTHER_FRAMEWORKS: &[&str] = &[".h5", ".msgpack", ".ot", ".onnx", ".onnx_data", ".tflite", ".mlmodel"];

fn is_pytorch_weights(p: &str) -> bool {
    PYTORCH.iter().any(|e| p.ends_with(e)) || p.ends_with(".bin.index.json")
}

fn is_other_framework(p: &str) -> bool {
    OTHER_FRAMEWORKS.iter().any(|e| p.ends_with(e))
        || p.starts_with("coreml/")
        || p.starts_with("onnx/")
        || p.ends_with(".msgpack.index.json")
        || p.ends_with(".h5.index.json")
}

/// Apply the rules above. `required` are paths the registry records for the model.
pub fn select(files: &[RemoteFile], include: &[String], exclude: &[String], required: &[String]) -> Result<Selection> {
    let mut sel = Selection::default();
    for r in required {
        if !files.iter().any(|f| &f.path == r) {
            return Err(HubError::BadResponse {
                what: format!("file {r}"),
                reason: "the registry records it for this model but the hub does not list it".into(),
            });
        }
    }
    let has_safetensors = files.iter().any(|f| f.path.ends_with(".safetensors"));
    let has_pytorch = files.iter().any(|f| is_pytorch_weights(&f.path) && !f.path.ends_with(".json"));
    let ggufs: Vec<&str> = files.iter().filter(|f| f.path.ends_with(".gguf")).map(|f| f.path.as_str()).collect();
    if include.is_empty() && ggufs.len() > 1 && !has_safetensors && !has_pytorch {
        return Err(HubError::BadResponse {
            what: "this repo".into(),
            reason: format!(
                "it holds {} GGUF files ({}); choose one with --include, e.g. --include '*{}'",
                ggufs.len(),
                ggufs.join(", "),
                ggufs[0].rsplit('/').next().unwrap_or(ggufs[0])
            ),
        });
    }
    for f in files {
        let p = f.path.as_str();
        let is_required = required.iter().any(|r| r == p);
        let reason = if is_required {
            None
        } else if !include.is_empty() && !include.iter().any(|g| glob_match(g, p)) {
            Some("not matched by --include")
        } else if exclude.iter().any(|g| glob_match(g, p)) {
            Some("matched by --exclude")
        } else if include.is_empty() && has_safetensors && is_pytorch_weights(p) {
            Some("PyTorch twin of the safetensors weights")
        } else if include.is_empty() && (has_safetensors || has_pytorch) && is_other_framework(p) {
            Some("weights for another framework")
        } else {
            None
        };
        match reason {
            Some(r) => sel.skipped.push((f.path.clone(), r)),
            None => sel.files.push(f.clone()),
        }
    }
    Ok(sel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: &str) -> RemoteFile {
        RemoteFile { path: p.into(), size: Some(1), blob_id: None, lfs_sha256: None }
    }

    #[test]
    fn globs_follow_fnmatch() {
        assert!(glob_match("*.safetensors", "a/b/model.safetensors"), "* crosses /");
        assert!(glob_match("model-0000?-of-*.safetensors", "model-00001-of-00002.safetensors"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[!a-c]x", "bx"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("*.json", "config.jsonl"));
        assert!(glob_match("[x", "[x"), "unclosed bracket is literal");
        assert!(glob_match("*q4_0*", "smollm2.q4_0.gguf"));
    }

    #[test]
    fn safetensors_win_over_bin_twins() {
        let files = [
            f("config.json"),
            f("model.safetensors"),
            f("pytorch_model.bin"),
            f("pytorch_model.bin.index.json"),
            f("tf_model.h5"),
            f("onnx/model.onnx"),
            f("tokenizer.json"),
        ];
        let s = select(&files, &[], &[], &[]).unwrap();
        let got: Vec<&str> = s.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(got, ["config.json", "model.safetensors", "tokenizer.json"]);
        assert_eq!(s.skipped.len(), 4);

        let only_bin = [f("config.json"), f("pytorch_model.bin"), f("flax_model.msgpack")];
        let s = select(&only_bin, &[], &[], &[]).unwrap();
        assert_eq!(s.files.len(), 2);
    }

    #[test]
    fn include_exclude_and_required() {
        let files = [f("a.gguf"), f("b.gguf"), f("README.md")];
        let err = select(&files, &[], &[], &[]).unwrap_err().to_string();
        assert!(err.contains("a.gguf, b.gguf") && err.contains("--include"), "{err}");
        let s = select(&files, &["*b.gguf".into()], &[], &[]).unwrap();
        assert_eq!(s.files, vec![f("b.gguf")]);
        let s = select(&files, &["*b.gguf".into()], &[], &["README.md".into()]).unwrap();
        assert_eq!(s.files.len(), 2);
        let s = select(&[f("x.json"), f("y.md")], &[], &["*.md".into()], &[]).unwrap();
        assert_eq!(s.files, vec![f("x.json")]);
        assert!(select(&files, &[], &[], &["missing.bin".into()]).is_err());
    }
}
