//! Accuracy from predictions: per subset, per language, item-weighted over everything
//! (`overall`, lm-eval's `weight_by_size` micro average) and unweighted over subsets
//! (Apollo's "Avg."), each with its standard error. Percentages.
//!
//! Standard error of an accuracy p over n items: √(p(1−p)/(n−1)), lm-evaluation-harness's
//! `mean_stderr` (sample standard deviation over √n). Of an unweighted mean of k subsets:
//! √(Σ seᵢ²)/k (the subsets are independent samples).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One scored question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Position among the selected questions, in file order.
    pub index: usize,
    pub subset: String,
    pub language: Option<String>,
    /// The predicted letter; `None` when nothing could be extracted (counted wrong).
    pub pred: Option<String>,
    /// The gold letter(s).
    pub gold: String,
    pub correct: bool,
    /// Per option, when scored by log-likelihood: log p(continuation | prompt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loglik: Option<Vec<f64>>,
    /// When generated: the model's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub n: usize,
    pub correct: usize,
    /// Percent.
    pub accuracy: f64,
    /// Percent.
    pub stderr: f64,
}

impl Score {
    fn of(n: usize, correct: usize) -> Score {
        let p = if n == 0 { 0.0 } else { correct as f64 / n as f64 };
        let se = if n > 1 { (p * (1.0 - p) / (n - 1) as f64).sqrt() } else { 0.0 };
        Score { n, correct, accuracy: 100.0 * p, stderr: 100.0 * se }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Item-weighted accuracy over every question, percent.
    pub overall: f64,
    pub overall_stderr: f64,
    pub n: usize,
    pub correct: usize,
    /// Unweighted mean of the subsets' accuracies (Apollo's "Avg."), percent.
    pub unweighted: f64,
    pub unweighted_stderr: f64,
    pub per_subset: BTreeMap<String, Score>,
    pub per_language: BTreeMap<String, Score>,
}

/// The summary of `preds`.
pub fn summarize(preds: &[Prediction]) -> Summary {
    let mut subsets: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut langs: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for p in preds {
        let s = subsets.entry(p.subset.clone()).or_default();
        s.0 += 1;
        s.1 += usize::from(p.correct);
        let l = langs.entry(p.language.clone().unwrap_or_else(|| "unknown".into())).or_default();
        l.0 += 1;
        l.1 += usize::from(p.correct);
    }
    let per_subset: BTreeMap<String, Score> = subsets.into_iter().map(|(k, (n, c))| (k, Score::of(n, c))).collect();
    let per_language = langs.into_iter().map(|(k, (n, c))| (k, Score::of(n, c))).collect();
    let correct = preds.iter().filter(|p| p.correct).count();
    let all = Score::of(preds.len(), correct);
    let k = per_subset.len().max(1) as f64;
    let unweighted = per_subset.values().map(|s| s.accuracy).sum::<f64>() / k;
    let unweighted_stderr = per_subset.values().map(|s| s.stderr * s.stderr).sum::<f64>().sqrt() / k;
    Summary {
        overall: all.accuracy,
        overall_stderr: all.stderr,
        n: preds.len(),
        correct,
        unweighted,
        unweighted_stderr,
        per_subset,
        per_language,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(i: usize, subset: &str, lang: &str, ok: bool) -> Prediction {
        Prediction {
            index: i,
            subset: subset.into(),
            language: Some(lang.into()),
            pred: Some("A".into()),
            gold: if ok { "A" } else { "B" }.into(),
            correct: ok,
            loglik: None,
            output: None,
        }
    }

    /// By hand: subset s1 3/4 = 75%, s2 1/2 = 50%; overall 4/6; unweighted 62.5%.
    #[test]
    fn weighted_unweighted_and_errors_by_hand() {
        let preds = [
            p(0, "s1", "en", true),
            p(1, "s1", "en", true),
            p(2, "s1", "en", true),
            p(3, "s1", "en", false),
            p(4, "s2", "zh", true),
            p(5, "s2", "zh", false),
        ];
        let s = summarize(&preds);
        assert_eq!((s.n, s.correct), (6, 4));
        assert!((s.overall - 400.0 / 6.0).abs() < 1e-9);
        assert!((s.unweighted - 62.5).abs() < 1e-9);
        // se(s1) = sqrt(.75 * .25 / 3) = 0.25; se(s2) = sqrt(.25 / 1) = 0.5.
        assert!((s.per_subset["s1"].stderr - 25.0).abs() < 1e-9);
        assert!((s.per_subset["s2"].stderr - 50.0).abs() < 1e-9);
        assert!((s.unweighted_stderr - (25.0f64.powi(2) + 50.0f64.powi(2)).sqrt() / 2.0).abs() < 1e-9);
        let p_all: f64 = 4.0 / 6.0;
        assert!((s.overall_stderr - 100.0 * (p_all * (1.0 - p_all) / 5.0).sqrt()).abs() < 1e-9);
        assert_eq!(s.per_language["zh"].correct, 1);
    }
}
