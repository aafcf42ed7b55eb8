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
    /// Apollo's generation prompt (repo Apollo `data_process_test_*.py`), for `--mode generate`:
    /// few-shot exemplars then the question, in the question's language (see [`apollo`]).
    Apollo,
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
    pub const NAMES: &[&str] = &["mmlu-classic", "plain", "apollo"];

    pub fn from_name(s: &str) -> Option<McqPrompt> {
        match s {
            "mmlu-classic" => Some(McqPrompt::MmluClassic),
            "plain" => Some(McqPrompt::Plain),
            "apollo" => Some(McqPrompt::Apollo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            McqPrompt::MmluClassic => "mmlu-classic",
            McqPrompt::Plain => "plain",
            McqPrompt::Apollo => "apollo",
        }
    }

    /// True for the formats that end in `Answer:` and score continuations (`--mode loglik`).
    pub fn scores_continuations(self) -> bool {
        !matches!(self, McqPrompt::Apollo)
    }

    /// The loglik rendering (the Apollo format renders with [`apollo`]; here it falls back to
    /// `plain`).
    pub fn render(self, q: &Question) -> Rendered {
        let mut body = String::new();
        let prefix = match self {
            McqPrompt::MmluClassic => {
                format!("The following are multiple choice questions (with answers) about {}.\n\n", subject(&q.subset))
            }
            McqPrompt::Plain | McqPrompt::Apollo => {
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

/// Apollo's instruction and field names for a language: (instruction with `{L}` for the last
/// option letter, question field, options field, answer sentence with `{answer}`). English,
/// Chinese, Spanish and French as repo Apollo writes them; other languages use English (the
/// Hindi and Arabic strings were not available to check).
fn apollo_lang(lang: Option<&str>) -> (&'static str, &'static str, &'static str, &'static str) {
    match lang {
        Some("zh") => (
            "您是一名医生，正在回答现实世界的医学考试问题。请从A到{L}中选择一个正确答案。",
            "问题:",
            "选项:",
            "正确答案是{answer}.",
        ),
        Some("es") => (
            "Usted es un médico que responde preguntas de exámenes médicos del mundo real. Elija una respuesta correcta de la A a la {L}.",
            "pregunta:",
            "Opciones:",
            "La respuesta correcta es {answer}.",
        ),
        Some("fr") => (
            "Vous êtes un médecin et répondez à des questions d'examen médical du monde réel. Veuillez choisir une bonne réponse de A à {L}.",
            "question:",
            "Possibilités:",
            "La bonne réponse est {answer}.",
        ),
        _ => (
            "You are a medical doctor answering real-world medical exam questions. Select one correct answer from A to {L}.",
            "Question:",
            "Options:",
            "The correct answer is {answer}.",
        ),
    }
}

/// One question in Apollo's format, up to `Assistant:`.
fn apollo_block(q: &Question) -> String {
    let (instr, qf, of, _) = apollo_lang(q.language.as_deref());
    let last = Question::letter(q.choices.len().saturating_sub(1)).to_string();
    let mut instr = instr.replace("{L}", &last);
    let options: Vec<String> =
        q.choices.iter().enumerate().map(|(i, c)| format!("({}) {c}", Question::letter(i))).collect();
    let mut ctx = String::new();
    if let Some(c) = q.context.as_ref().filter(|_| q.subset == "pubmedqa") {
        instr.push_str(" Choose ‘yes’ or ‘no’ if the evidence in the context supports a definitive answer. Choose ‘maybe’ if the evidence in the context does not support a definitive answer.");
        ctx = format!("Context: {c} \n");
    }
    format!("User:{instr}\n{ctx}{qf} {}\n{of}\n{}\nAssistant:", q.question, options.join("\n"))
}

/// Apollo's few-shot prompt: each exemplar is its block, `The correct answer is (X).`, the
/// model's end-of-sequence text and a line break; exemplars are added in order while the
/// prompt stays under `max_chars` characters (Apollo: 4,096); then the question's block.
pub fn apollo(q: &Question, shots: &[&Question], eos: &str, max_chars: usize) -> String {
    let question = apollo_block(q);
    let mut prefix = String::new();
    for s in shots {
        let (_, _, _, answer) = apollo_lang(s.language.as_deref());
        let gold = format!("({})", s.gold.first().map(|&i| Question::letter(i)).unwrap_or('A'));
        let ex = format!("{}{}{eos}\n", apollo_block(s), answer.replace("{answer}", &gold));
        if prefix.chars().count() + ex.chars().count() + question.chars().count() >= max_chars {
            break;
        }
        prefix.push_str(&ex);
    }
    prefix + &question
}

/// The few-shot exemplars of question `i` of `qs`: `k` others of its subset, drawn without
/// replacement by [`crate::SplitMix64`] seeded with `seed` and `i`, so every run (and every
/// machine) draws the same ones. Fewer when the subset is small.
pub fn shots(qs: &[Question], i: usize, k: usize, seed: u64) -> Vec<usize> {
    let Some(q) = qs.get(i) else { return Vec::new() };
    let mut pool: Vec<usize> =
        (0..qs.len()).filter(|&j| j != i && qs.get(j).is_some_and(|o| o.subset == q.subset)).collect();
    let mut rng = crate::SplitMix64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::with_capacity(k.min(pool.len()));
    while out.len() < k && !pool.is_empty() {
        out.push(pool.swap_remove(rng.below(pool.len())));
    }
    out
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

    #[test]
    fn apollo_prompt_with_exemplars_under_the_character_limit() {
        let q = |t: &str, g: usize| Question {
            subset: "medqa-usmle".into(),
            language: Some("en".into()),
            question: t.into(),
            context: None,
            choices: vec!["x".into(), "y".into(), "z".into(), "w".into()],
            gold: vec![g],
        };
        let (a, b) = (q("Q1?", 1), q("Q2?", 3));
        let p = apollo(&a, &[&b], "<|endoftext|>", 4096);
        assert_eq!(
            p,
            "User:You are a medical doctor answering real-world medical exam questions. Select one correct answer from A to D.\nQuestion: Q2?\nOptions:\n(A) x\n(B) y\n(C) z\n(D) w\nAssistant:The correct answer is (D).<|endoftext|>\n\
             User:You are a medical doctor answering real-world medical exam questions. Select one correct answer from A to D.\nQuestion: Q1?\nOptions:\n(A) x\n(B) y\n(C) z\n(D) w\nAssistant:"
        );
        // Shots: same subset, never the question itself, the same for the same seed.
        let qs = vec![q("a", 0), q("b", 0), q("c", 0), Question { subset: "other".into(), ..q("d", 0) }];
        let s = shots(&qs, 0, 3, 42);
        assert_eq!(s.len(), 2);
        assert!(!s.contains(&0) && !s.contains(&3));
        assert_eq!(s, shots(&qs, 0, 3, 42));
        // An exemplar that would reach the limit is left out.
        let short = apollo(&a, &[&b], "<|endoftext|>", 300);
        assert!(short.starts_with("User:") && short.contains("Q1?") && !short.contains("Q2?"), "{short}");
    }
}
