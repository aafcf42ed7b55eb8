//! Helpers shared by the black-box tests: fixture paths and bit-exact checkpoint comparison.

use std::path::{Path, PathBuf};

use zoo_weights::Checkpoint;

/// `tests/fixtures/reference` of the repository (copied from the shared reference fixtures); a missing folder fails with a hint.
pub fn shared_fixtures() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/reference"));
    assert!(
        p.join("delta").is_dir(),
        "reference fixtures missing at {}: they are part of the repository (tests/fixtures/reference)",
        p.display()
    );
    p
}

/// `tests/fixtures/delta-cases` of the workspace; a missing folder fails with a hint.
pub fn delta_cases() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/delta-cases"));
    assert!(
        p.is_dir(),
        "torch-made delta cases missing at {}: regenerate them with tests/fixtures/make_delta_cases.py",
        p.display()
    );
    p
}

/// Asserts that two checkpoints hold the same tensors (names, dtypes, shapes, bytes).
pub fn assert_same_tensors(got: &Path, want: &Path) {
    assert_eq!(compare(got, want, false), 0);
}

/// Like [`assert_same_tensors`], but an element may be `+0.0` where the other is `-0.0`
/// (IEEE `x - x` is `+0.0`, so `(t - b) + b` cannot give back a `-0.0`). Returns how many
/// such elements there were.
pub fn assert_same_tensors_but_zero_signs(got: &Path, want: &Path) -> usize {
    compare(got, want, true)
}

/// True if these little-endian float bytes are a zero of either sign.
fn is_zero(bytes: &[u8]) -> bool {
    let (last, rest) = bytes.split_last().unwrap();
    last & 0x7f == 0 && rest.iter().all(|&b| b == 0)
}

fn compare(got: &Path, want: &Path, zero_signs: bool) -> usize {
    let mut signed_zeros = 0;
    let got = Checkpoint::open(got).unwrap_or_else(|e| panic!("open {}: {e}", got.display()));
    let want = Checkpoint::open(want).unwrap_or_else(|e| panic!("open {}: {e}", want.display()));
    let mut got_names: Vec<&str> = got.tensors().iter().map(|t| t.name.as_str()).collect();
    let mut want_names: Vec<&str> = want.tensors().iter().map(|t| t.name.as_str()).collect();
    got_names.sort_unstable();
    want_names.sort_unstable();
    assert_eq!(got_names, want_names, "tensor names differ");
    for w in want.tensors() {
        let g = got.get(&w.name).unwrap();
        assert_eq!((g.dtype, &g.shape), (w.dtype, &w.shape), "{}: dtype/shape", w.name);
        let gb = got.read_to_vec(g, 1 << 30).unwrap();
        let wb = want.read_to_vec(w, 1 << 30).unwrap();
        let esize = w.dtype.size().unwrap_or(1) as usize;
        if zero_signs {
            let pairs = gb.chunks(esize).zip(wb.chunks(esize)).filter(|(a, b)| a != b);
            for (a, b) in pairs {
                assert!(is_zero(a) && is_zero(b), "{}: {a:?} != {b:?}", w.name);
                signed_zeros += 1;
            }
            continue;
        }
        if gb != wb {
            let diff = gb.chunks(esize).zip(wb.chunks(esize)).filter(|(a, b)| a != b).count();
            let first = gb.chunks(esize).zip(wb.chunks(esize)).position(|(a, b)| a != b).unwrap_or(0);
            panic!("{}: {diff} elements differ, first at element {first}", w.name);
        }
    }
    signed_zeros
}

/// Number of entries in a folder (to prove nothing was left behind).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}
