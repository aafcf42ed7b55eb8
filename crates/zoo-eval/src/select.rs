//! Which questions of a file run: subsets by name (a source, a subject, or a named set), by
//! language, and the first N. Names compare without case, with `_`, `-` and spaces alike, so
//! `clinical_knowledge`, `Clinical Knowledge` and `clinical-knowledge` are one subject.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::{EvalError, Question, Result};

/// Named sets of subsets.
pub const NAMED: &[(&str, &str, &[&str])] = &[
    (
        "mmlu-medical-6",
        "MMLU's 6 medical subjects (MultiMedQA, lm-eval `multimedqa`, Apollo's HI/AR sets): 1,089 test questions",
        &[
            "anatomy",
            "clinical knowledge",
            "college biology",
            "college medicine",
            "medical genetics",
            "professional medicine",
        ],
    ),
    (
        "mmlu-medical-9",
        "the 9 MMLU subjects of Apollo's shipped English `mmlu-medical` (the 6 + high school biology, nutrition, virology): 1,871",
        &[
            "anatomy",
            "clinical knowledge",
            "college biology",
            "college medicine",
            "high school biology",
            "medical genetics",
            "nutrition",
            "professional medicine",
            "virology",
        ],
    ),
    (
        "xmedbench-9",
        "the 9 XMedBench sources of Apollo's Table 3 (its Avg. is their unweighted mean)",
        &[
            "medqa-usmle",
            "medmcqa",
            "mmlu-medical",
            "medqa-mcmle",
            "cmmlu-medical",
            "frenchmedmcqa",
            "headqa",
            "mmlu-medical-ar",
            "mmlu-medical-hi",
        ],
    ),
];

fn norm(s: &str) -> String {
    s.trim().to_lowercase().replace(['_', '-'], " ")
}

/// What to run. Empty lists select everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    /// Subsets (sources or subjects) or named sets.
    pub subsets: Vec<String>,
    /// ISO 639-1 codes.
    pub languages: Vec<String>,
    /// Only the first N selected questions.
    pub limit: Option<usize>,
}

impl Selection {
    /// The selected questions with their indices among the selected ones (file order).
    pub fn apply<'a>(&self, questions: &'a [Question]) -> Result<Vec<&'a Question>> {
        let present: BTreeSet<String> = questions.iter().map(|q| norm(&q.subset)).collect();
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for s in &self.subsets {
            if let Some((_, _, members)) = NAMED.iter().find(|(n, _, _)| norm(n) == norm(s)) {
                wanted.extend(members.iter().map(|m| norm(m)));
            } else if present.contains(&norm(s)) {
                wanted.insert(norm(s));
            } else {
                let mut known: Vec<String> =
                    questions.iter().map(|q| q.subset.clone()).collect::<BTreeSet<_>>().into_iter().collect();
                known.extend(NAMED.iter().map(|(n, _, _)| format!("{n} (named set)")));
                return Err(EvalError::UnknownSubset { name: s.clone(), known });
            }
        }
        let langs: BTreeSet<String> = self.languages.iter().map(|l| l.trim().to_lowercase()).collect();
        let selected: Vec<&Question> = questions
            .iter()
            .filter(|q| wanted.is_empty() || wanted.contains(&norm(&q.subset)))
            .filter(|q| langs.is_empty() || q.language.as_ref().is_some_and(|l| langs.contains(&l.to_lowercase())))
            .take(self.limit.unwrap_or(usize::MAX))
            .collect();
        if selected.is_empty() {
            return Err(EvalError::Empty(self.describe()));
        }
        Ok(selected)
    }

    /// A stable one-line description, recorded with a run.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.subsets.is_empty() {
            parts.push(format!("subsets={}", self.subsets.join(",")));
        }
        if !self.languages.is_empty() {
            parts.push(format!("languages={}", self.languages.join(",")));
        }
        if let Some(n) = self.limit {
            parts.push(format!("limit={n}"));
        }
        if parts.is_empty() { "all".into() } else { parts.join(" ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(subset: &str, lang: &str) -> Question {
        Question {
            subset: subset.into(),
            language: Some(lang.into()),
            question: "q".into(),
            context: None,
            choices: vec!["a".into(), "b".into()],
            gold: vec![0],
        }
    }

    #[test]
    fn subsets_languages_named_sets_and_limits() {
        let qs = [q("anatomy", "en"), q("virology", "en"), q("college medicine", "en"), q("cmexam", "zh")];
        let sel = |s: &[&str], l: &[&str], n: Option<usize>| Selection {
            subsets: s.iter().map(|x| x.to_string()).collect(),
            languages: l.iter().map(|x| x.to_string()).collect(),
            limit: n,
        };
        assert_eq!(sel(&[], &[], None).apply(&qs).unwrap().len(), 4);
        assert_eq!(sel(&["mmlu-medical-6"], &[], None).apply(&qs).unwrap().len(), 2);
        assert_eq!(sel(&["MMLU_Medical_9"], &[], None).apply(&qs).unwrap().len(), 3);
        assert_eq!(sel(&["College_Medicine", "cmexam"], &[], None).apply(&qs).unwrap().len(), 2);
        assert_eq!(sel(&[], &["zh"], None).apply(&qs).unwrap()[0].subset, "cmexam");
        assert_eq!(sel(&[], &[], Some(1)).apply(&qs).unwrap().len(), 1);
        let e = sel(&["anatomyy"], &[], None).apply(&qs).unwrap_err().to_string();
        assert!(
            e.contains("unknown subset \"anatomyy\"") && e.contains("college medicine") && e.contains("mmlu-medical-6"),
            "{e}"
        );
        assert!(sel(&["anatomy"], &["fr"], None).apply(&qs).is_err());
        assert_eq!(sel(&["anatomy"], &["en"], Some(3)).describe(), "subsets=anatomy languages=en limit=3");
    }
}
