//! Human votes between two models' answers, as in LLM Zoo's human evaluation: the voter sees
//! the two answers side by side with the names hidden and the sides drawn at random, presses a
//! key, and the votes are tallied per pair into win / tie / lose counts and percentages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::SplitMix64;

/// A vote from the perspective of model A against model B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    Win,
    Tie,
    Lose,
}

impl Vote {
    /// Reads a voter's key, given whether model A's answer was shown on the left:
    /// - `1` or `←`: the left answer is better;
    /// - `2` or `→`: the right answer is better;
    /// - `t`, `T` or `=`: a tie.
    ///
    /// (A front end passes its arrow keys as the characters `←` and `→`.) Space is not a tie
    /// key, so a stray press records nothing. `None` for any other key.
    pub fn from_key(c: char, a_shown_left: bool) -> Option<Vote> {
        let left_better = match c {
            '1' | '←' => true,
            '2' | '→' => false,
            't' | 'T' | '=' => return Some(Vote::Tie),
            _ => return None,
        };
        Some(if left_better == a_shown_left { Vote::Win } else { Vote::Lose })
    }

    /// The same vote from model B's side.
    pub fn flip(self) -> Vote {
        match self {
            Vote::Win => Vote::Lose,
            Vote::Tie => Vote::Tie,
            Vote::Lose => Vote::Win,
        }
    }
}

/// Whether model A's answer goes on the left for this question: a draw seeded from the sha256
/// of the seed, the question id and the two names, so a resumed session shows the same sides.
/// The draw is made for the pair in name order, so swapping A and B keeps the same answer on
/// the same side (`shown_left(s, q, a, b) == !shown_left(s, q, b, a)` for a ≠ b).
pub fn shown_left(seed: u64, question_id: &str, model_a: &str, model_b: &str) -> bool {
    let (first, second) = if model_a <= model_b { (model_a, model_b) } else { (model_b, model_a) };
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    // Length-prefixed, so ("ab", "c") and ("a", "bc") hash differently.
    for part in [question_id, first, second] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut word = [0u8; 8];
    word.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    let first_left = SplitMix64(u64::from_le_bytes(word)).below(2) == 0;
    first_left == (first == model_a)
}

/// The votes of one pair, `model_a` before `model_b` in name order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoteTally {
    pub model_a: String,
    pub model_b: String,
    /// Votes for A, ties, votes for B.
    pub win: usize,
    pub tie: usize,
    pub lose: usize,
    pub total: usize,
    /// Percent of `total` (0 when there are no votes).
    pub win_pct: f64,
    pub tie_pct: f64,
    pub lose_pct: f64,
}

/// Tallies `(model a, model b, vote)` triples per pair. A pair is put in name order, the vote
/// turned with it (`(B, A, Win)` counts as `(A, B, Lose)`); the pairs come sorted by names.
pub fn tally(votes: &[(String, String, Vote)]) -> Vec<VoteTally> {
    let mut pairs: BTreeMap<(&str, &str), [usize; 3]> = BTreeMap::new();
    for (a, b, v) in votes {
        let (key, v) = if a <= b { ((a.as_str(), b.as_str()), *v) } else { ((b.as_str(), a.as_str()), v.flip()) };
        let counts = pairs.entry(key).or_default();
        match v {
            Vote::Win => counts[0] += 1,
            Vote::Tie => counts[1] += 1,
            Vote::Lose => counts[2] += 1,
        }
    }
    pairs
        .into_iter()
        .map(|((a, b), [win, tie, lose])| {
            let total = win + tie + lose;
            let pct = |x: usize| if total == 0 { 0.0 } else { 100.0 * x as f64 / total as f64 };
            VoteTally {
                model_a: a.into(),
                model_b: b.into(),
                win,
                tie,
                lose,
                total,
                win_pct: pct(win),
                tie_pct: pct(tie),
                lose_pct: pct(lose),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_back_to_a_and_b() {
        // A on the left: left better is a win for A.
        assert_eq!(Vote::from_key('1', true), Some(Vote::Win));
        assert_eq!(Vote::from_key('→', true), Some(Vote::Lose));
        // A on the right: the same keys turn round.
        assert_eq!(Vote::from_key('←', false), Some(Vote::Lose));
        assert_eq!(Vote::from_key('2', false), Some(Vote::Win));
        assert_eq!(Vote::from_key('=', false), Some(Vote::Tie));
        assert_eq!(Vote::from_key('t', true), Some(Vote::Tie));
        assert_eq!(Vote::from_key(' ', true), None);
        assert_eq!(Vote::from_key('3', true), None);
    }

    #[test]
    fn tallies_normalise_the_pair_order() {
        let v = |a: &str, b: &str, v: Vote| (a.to_string(), b.to_string(), v);
        let votes = [
            v("phoenix", "chimera", Vote::Win), // chimera vs phoenix: lose
            v("chimera", "phoenix", Vote::Win),
            v("chimera", "phoenix", Vote::Tie),
            v("phoenix", "chimera", Vote::Lose), // chimera vs phoenix: win
            v("a", "b", Vote::Tie),
        ];
        let t = tally(&votes);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].model_a.as_str(), t[0].model_b.as_str(), t[0].total), ("a", "b", 1));
        assert_eq!(t[0].tie_pct, 100.0);
        let c = &t[1];
        assert_eq!((c.model_a.as_str(), c.model_b.as_str()), ("chimera", "phoenix"));
        assert_eq!((c.win, c.tie, c.lose, c.total), (2, 1, 1, 4));
        assert_eq!((c.win_pct, c.tie_pct, c.lose_pct), (50.0, 25.0, 25.0));
        assert!(serde_json::to_string(c).unwrap().contains("\"win_pct\":50.0"));
    }

    #[test]
    fn sides_are_seeded_and_vary() {
        let draws: Vec<bool> = (0..64).map(|i| shown_left(7, &format!("q{i}"), "x", "y")).collect();
        let again: Vec<bool> = (0..64).map(|i| shown_left(7, &format!("q{i}"), "x", "y")).collect();
        assert_eq!(draws, again);
        assert!(draws.iter().any(|&l| l) && draws.iter().any(|&l| !l));
        // Swapping the names keeps each answer on its side.
        assert!((0..64).all(|i| shown_left(7, &format!("q{i}"), "y", "x") != draws[i]));
        // Another seed gives another layout.
        let other: Vec<bool> = (0..64).map(|i| shown_left(8, &format!("q{i}"), "x", "y")).collect();
        assert_ne!(draws, other);
    }
}
