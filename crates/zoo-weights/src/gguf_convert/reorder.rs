//! Per-tensor transforms on the way into GGUF and their inverses on the way out: LLaMA's
//! (and Baichuan's) q/k row permutation, BLOOM's fused QKV order, Gemma's stored norm `+1`,
//! Baichuan2's normalized head. **Invariant:** `apply(apply(x, false), true) == x` for every
//! reordering (the normalized head excepted: it stays normalized, see [`Reorder::NormRows`]).

use super::arch::Arch;

/// How rows of a tensor are reordered on the way into GGUF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reorder {
    None,
    /// llama.cpp's `permute(w, n_head)`: rows `(h, 2, half)` → `(h, half, 2)`.
    Rope {
        n_head: usize,
    },
    /// BLOOM's fused QKV: rows `(n_head, 3, head_dim)` → `(3, n_head, head_dim)`.
    BloomQkv {
        n_head: usize,
    },
    /// Not a reordering: Gemma's norm weights get `+1` on the way in (`-1` on the way out).
    AddOne,
    /// Not a reordering: every row divided by its L2 norm (Baichuan2's NormHead, applied once
    /// at conversion as llama.cpp expects; the way out keeps the normalized rows, which the
    /// NormHead normalizes again to the same values).
    NormRows,
}

impl Reorder {
    /// What the GGUF tensor `gguf` (a llama.cpp name) of `arch` needs.
    pub(super) fn of(arch: Arch, gguf: &str, n_head: usize, n_kv: usize) -> Reorder {
        match (arch, gguf.rsplit('.').nth(1)) {
            (Arch::Llama | Arch::Baichuan, Some("attn_q")) => Reorder::Rope { n_head },
            (Arch::Llama | Arch::Baichuan, Some("attn_k")) => Reorder::Rope { n_head: n_kv },
            (Arch::Bloom, Some("attn_qkv")) => Reorder::BloomQkv { n_head },
            (Arch::Gemma, Some(part)) if part.ends_with("_norm") && gguf.ends_with(".weight") => Reorder::AddOne,
            _ => Reorder::None,
        }
    }

    /// For output row `r` of `rows`, the input row it comes from (`inverse`: the other way).
    fn source_row(self, r: usize, rows: usize, inverse: bool) -> usize {
        let (a, b, c, swap): (usize, usize, usize, bool) = match self {
            Reorder::None | Reorder::AddOne | Reorder::NormRows => return r,
            Reorder::Rope { n_head } => {
                let per = rows / n_head.max(1);
                (n_head, 2, per / 2, true)
            }
            Reorder::BloomQkv { n_head } => (n_head, 3, rows / n_head.max(1) / 3, false),
        };
        if a * b * c != rows || c == 0 {
            return r;
        }
        if swap {
            // Input (h, j, i) over (a, b, c); output (h, i, j) over (a, c, b).
            if inverse {
                let (h, j, i) = (r / (b * c), (r / c) % b, r % c);
                h * b * c + i * b + j
            } else {
                let (h, i, j) = (r / (b * c), (r / b) % c, r % b);
                h * b * c + j * c + i
            }
        } else {
            // Input (h, k, d) over (a, b, c); output (k, h, d) over (b, a, c).
            if inverse {
                let (h, k, d) = (r / (b * c), (r / c) % b, r % c);
                k * a * c + h * c + d
            } else {
                let (k, h, d) = (r / (a * c), (r / c) % a, r % c);
                h * b * c + k * c + d
            }
        }
    }

    pub(super) fn apply(self, x: Vec<f32>, rows: usize, inverse: bool) -> Vec<f32> {
        if self == Reorder::None || rows == 0 {
            return x;
        }
        if self == Reorder::AddOne {
            let d = if inverse { -1.0 } else { 1.0 };
            return x.into_iter().map(|v| v + d).collect();
        }
        if self == Reorder::NormRows {
            if inverse {
                return x;
            }
            let cols = x.len() / rows;
            let mut x = x;
            for row in x.chunks_mut(cols.max(1)) {
                // torch.nn.functional.normalize: v / max(||v||, 1e-12), the norm in f32.
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter_mut().for_each(|v| *v /= norm);
            }
            return x;
        }
        let cols = x.len() / rows;
        let mut out = Vec::with_capacity(x.len());
        for r in 0..rows {
            let s = self.source_row(r, rows, inverse);
            out.extend_from_slice(x.get(s * cols..(s + 1) * cols).unwrap_or_default());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_permutation_matches_llama_cpp_and_inverts() {
        // numpy: np.arange(8).reshape(2, 2, 2).swapaxes(1, 2).reshape(8) = [0, 2, 1, 3, 4, 6, 5, 7]
        let r = Reorder::Rope { n_head: 2 };
        let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
        let y = r.apply(x.clone(), 8, false);
        assert_eq!(y, [0., 2., 1., 3., 4., 6., 5., 7.]);
        // head_dim 6: (1, 2, 3) → (1, 3, 2): [0, 3, 1, 4, 2, 5]
        let x6: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(Reorder::Rope { n_head: 1 }.apply(x6.clone(), 6, false), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(
            Reorder::Rope { n_head: 1 }.apply(Reorder::Rope { n_head: 1 }.apply(x6.clone(), 6, false), 6, true),
            x6
        );
        // BLOOM: (2 heads, 3, 1) → (3, 2, 1): [q0, k0, v0, q1, k1, v1] → [q0, q1, k0, k1, v0, v1]
        let b = Reorder::BloomQkv { n_head: 2 };
        assert_eq!(b.apply(x6.clone(), 6, false), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(b.apply(b.apply(x6.clone(), 6, false), 6, true), x6);
    }
}
