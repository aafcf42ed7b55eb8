//! Prompt formats for multiple-choice scoring. Each renders a question into a prefix (shared by
//! every question of its subset: computed once), a body, and the continuations whose
//! likelihood is compared. Exact strings are documented in docs/EVAL.md and recorded with every
//! run, so a number can be reproduced.

use serde::Serialize;

use crate::Question;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum McqPrompt {
    /// MMLU's original prompt (Hendrycks et al.; lm-evaluation-harness `mmlu`), zero-shot:
    /// `The following are multiple choice questions (with answers) about {subject}.\n\n`
    /// `{question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:`, continuations ` A` … ` D`.
    MmluClassic,
    /// lm-evaluation-harness's MedQA/MedMCQA form, without the subject line:
    /// `Question: {question}\nA. {a}\n…\nAnswer:` (PubMedQA's abstract first, as `Context: …\n`),
    /// continuations ` A` ….
    Plain,
}

/// One question rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Text every question of the subset starts with (may be empty).
    pub prefix: String,
    /// The rest of the prompt.
    pub body: String,
    /// One continuation per option, in order.
    pub continuations: Vec<String>,
}

impl Rendered {
    pub fn prompt(&self) -> String {
        format!("{}{}", self.prefix, self.body)
    }
}

impl McqPrompt {
    pub const NAMES: &[&str] = &["mmlu-classic", "plain"];

    pub fn from_name(s: &str) -> Option<McqPrompt> {
        match s {
            "mmlu-classic" => Some(McqPrompt::MmluClassic),
            "plain" => Some(McqPrompt::Plain),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            McqPrompt::MmluClassic => "mmlu-classic",
            McqPrompt::Plain => "plain",
        }
    }

    pub fn render(self, q: &Question) -> Rendered {
        let mut body = String::new();
        let prefix = match self {
            McqPrompt::MmluClassic => {
                format!("The following are multiple choice questions (with answers) about {}.\n\n", subject(&q.subset))
            }
            McqPrompt::Plain => {
                if let Some(c) = &q.context {
                    body.push_str(&format!("Context: {c}\n"));
                }
                body.push_str("Question: ");
                String::new()
            }
        };
        body.push_str(&q.question);
        for (i, c) in q.choices.iter().enumerate() {
            body.push_str(&format!("\n{}. {c}", Question::letter(i)));
        }
        body.push_str("\nAnswer:");
        let continuations = (0..q.choices.len()).map(|i| format!(" {}", Question::letter(i))).collect();
        Rendered { prefix, body, continuations }
    }
}

/// A subset name as MMLU's prompt writes its subject: underscores as spaces.
fn subject(s: &str) -> String {
    s.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmlu_classic_is_exactly_the_documented_string() {
        let q = Question {
            subset: "clinical_knowledge".into(),
            language: Some("en".into()),
            question: "What is 2+2?".into(),
            context: None,
            choices: vec!["1".into(), "2".into(), "3".into(), "4".into()],
            gold: vec![3],
        };
        let r = McqPrompt::MmluClassic.render(&q);
        assert_eq!(
            r.prompt(),
            "The following are multiple choice questions (with answers) about clinical knowledge.\n\nWhat is 2+2?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"
        );
        assert_eq!(r.continuations, [" A", " B", " C", " D"]);
        let p = McqPrompt::Plain.render(&Question { context: Some("Abs.".into()), ..q });
        assert_eq!(p.prompt(), "Context: Abs.\nQuestion: What is 2+2?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:");
        assert_eq!(McqPrompt::from_name("mmlu-classic"), Some(McqPrompt::MmluClassic));
    }
}
