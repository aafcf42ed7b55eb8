//! The report's data model: plain, serde-friendly records that the renderers only read.
//!
//! Numbers are percents (`62.5` means 62.5 %); a value that is absent, NaN or infinite is shown
//! as missing (`–`) and never plotted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One evaluation report: benchmark tables, judge comparisons and pairwise human votes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    /// When the report was made, as the caller formats it (RFC 3339 suggested).
    pub generated_at: String,
    /// The zoo version that made it.
    pub zoo_version: String,
    #[serde(default)]
    pub benchmarks: Vec<BenchmarkSection>,
    #[serde(default)]
    pub judges: Vec<JudgeSection>,
    #[serde(default)]
    pub votes: Vec<VoteSection>,
}

/// One benchmark's results: published numbers (from papers) beside zoo's own measurements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkSection {
    /// Short machine name, e.g. `xmedbench`; chart ids are made from it.
    pub name: String,
    /// Human title, e.g. `XMedBench (Apollo, 6 languages)`.
    pub title: String,
    /// What the values measure, e.g. `accuracy`.
    pub metric: String,
    /// The table's value columns, in display order.
    #[serde(default)]
    pub columns: Vec<Column>,
    #[serde(default)]
    pub rows: Vec<ResultRow>,
}

/// A value column of a benchmark table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// The key of [`ResultRow::values`] this column shows.
    pub key: String,
    /// Header text, e.g. `zh` or `Average`.
    pub label: String,
    /// Language code when the column holds one language's results.
    #[serde(default)]
    pub lang: Option<String>,
    /// An overall/average column: plotted in the overall-comparison chart, not the per-column one.
    #[serde(default)]
    pub aggregate: bool,
}

/// Where a row's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Copied from a paper or leaderboard ([`ResultRow::source`] says which).
    Published,
    /// Measured by zoo ([`ResultRow::provenance`] says how).
    Measured,
}

impl Origin {
    /// The lowercase word used in tables and legends.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Published => "published",
            Origin::Measured => "measured",
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One model's results on a benchmark, published or measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub model: String,
    pub origin: Origin,
    /// Column key -> percent. Keys without a column are ignored; columns without a key are missing.
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
    /// Paper or URL of a published number.
    #[serde(default)]
    pub source: Option<String>,
    /// How a measured number was made, e.g. `mode loglik, prompt mmlu-classic, zoo 0.1.0, model sha256 ab12…`.
    #[serde(default)]
    pub provenance: Option<String>,
}

/// An LLM-as-judge comparison against one reference model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeSection {
    /// e.g. `llmzoo-order (judge: gpt-4o, reference: chatgpt)`.
    pub name: String,
    /// The reference model the ratios are relative to.
    pub reference: String,
    #[serde(default)]
    pub rows: Vec<JudgeRow>,
}

/// One model's judged results against the reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeRow {
    pub model: String,
    /// Score as a percent of the reference's (LLM Zoo's "performance ratio"), when computed.
    #[serde(default)]
    pub ratio: Option<f64>,
    #[serde(default)]
    pub win: u32,
    #[serde(default)]
    pub tie: u32,
    #[serde(default)]
    pub lose: u32,
    /// Judge answers that could not be read.
    #[serde(default)]
    pub unparsable: u32,
    /// Mean rank among the compared answers (1 = best), for ordering judges.
    #[serde(default)]
    pub avg_rank: Option<f64>,
}

/// Pairwise (human or judge) votes between models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoteSection {
    pub title: String,
    #[serde(default)]
    pub rows: Vec<VoteRow>,
}

/// Votes on one pair: `win` counts votes for `model_a`, `lose` votes for `model_b`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VoteRow {
    pub model_a: String,
    pub model_b: String,
    #[serde(default)]
    pub win: u32,
    #[serde(default)]
    pub tie: u32,
    #[serde(default)]
    pub lose: u32,
}

impl JudgeRow {
    /// The win / tie / lose / unparsable counts, or `None` for a row that has none (a published
    /// ratio without a tally): shown as missing, never as zeros.
    pub fn counts(&self) -> Option<[u32; 4]> {
        let c = [self.win, self.tie, self.lose, self.unparsable];
        c.iter().any(|&x| x > 0).then_some(c)
    }

    /// Count `k` of [`counts`](Self::counts) (0 win, 1 tie, 2 lose, 3 unparsable) as text, `–`
    /// when the row has none.
    pub fn count_text(&self, k: usize) -> String {
        self.counts().and_then(|c| c.get(k).copied()).map_or_else(|| "–".to_string(), |x| x.to_string())
    }
}

impl ResultRow {
    /// The value of column `key`, when present and finite.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied().filter(|v| v.is_finite())
    }
}

impl BenchmarkSection {
    /// Row indices in display order: grouped by model (in order of first appearance), published
    /// before measured within a model, otherwise as given. So each published number sits right
    /// above the measurement it is compared with.
    pub fn display_order(&self) -> Vec<usize> {
        let mut first_seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for r in &self.rows {
            let next = first_seen.len();
            first_seen.entry(r.model.as_str()).or_insert(next);
        }
        let key = |i: usize| {
            let r = self.rows.get(i);
            let model_pos = r.and_then(|r| first_seen.get(r.model.as_str()).copied()).unwrap_or(usize::MAX);
            (model_pos, r.map(|r| r.origin))
        };
        let mut idx: Vec<usize> = (0..self.rows.len()).collect();
        // Stable sort keeps the given order among rows of one model and origin.
        idx.sort_by_key(|&i| key(i));
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_without_a_tally_shows_no_counts() {
        let published = JudgeRow { model: "m".into(), ratio: Some(85.2), ..Default::default() };
        assert_eq!((published.counts(), published.count_text(0)), (None, "–".to_string()));
        let judged = JudgeRow { model: "m".into(), win: 3, tie: 0, lose: 1, ..Default::default() };
        assert_eq!(
            (judged.count_text(0), judged.count_text(1), judged.count_text(2)),
            ("3".into(), "0".into(), "1".into())
        );
    }

    #[test]
    fn origin_is_lowercase_in_json_and_optional_fields_default() {
        let json = r#"{"title":"t","generated_at":"g","zoo_version":"v",
            "benchmarks":[{"name":"x","title":"X","metric":"accuracy",
              "columns":[{"key":"en","label":"en"}],
              "rows":[{"model":"m","origin":"published","values":{"en":1.5}}]}]}"#;
        let r: Report = serde_json::from_str(json).unwrap();
        let row = &r.benchmarks[0].rows[0];
        assert_eq!(row.origin, Origin::Published);
        assert_eq!(row.value("en"), Some(1.5));
        assert!(r.judges.is_empty() && r.votes.is_empty() && !r.benchmarks[0].columns[0].aggregate);
        let back = serde_json::to_string(&r).unwrap();
        assert!(back.contains(r#""origin":"published""#));
        assert_eq!(serde_json::from_str::<Report>(&back).unwrap(), r);
    }

    #[test]
    fn display_order_puts_published_above_measured_per_model() {
        let row = |model: &str, origin| ResultRow {
            model: model.into(),
            origin,
            values: BTreeMap::new(),
            source: None,
            provenance: None,
        };
        let b = BenchmarkSection {
            rows: vec![
                row("b", Origin::Measured),
                row("a", Origin::Measured),
                row("b", Origin::Published),
                row("a", Origin::Published),
                row("b", Origin::Measured),
            ],
            ..BenchmarkSection::default()
        };
        assert_eq!(b.display_order(), [2, 0, 4, 3, 1]);
    }
}
