//! Judging open answers with a judge model: open-question files read into [`OpenQuestion`]s,
//! the LLM Zoo ordering judge (`llmzoo-order`: all answers to a question shown at once, the judge
//! orders them, a model scores 10 / rank), FastChat's MT-bench pairwise judge (`mt-bench-pair`,
//! each pair played in both orders) and HuatuoGPT-II's pairwise phrase, with their prompts,
//! verdict parsers and tallies. No model runs here: the caller sends the [`ChatRequestText`]s.
//!
//! A judgment that cannot be parsed is never dropped: the parsers answer `None` and the tallies
//! count it as unparsable, so a judge that ignores the format shows up in the results.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{EvalError, Result};

/// One open question (no gold answer: the answers are judged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenQuestion {
    pub id: String,
    pub text: String,
    pub category: Option<String>,
    pub lang: Option<String>,
}

/// Reads an open-questions JSON lines file. Each record is one of:
/// - LLM Zoo `questions-{en,zh}.jsonl`: `{question_id: int, text, category, lang, meta_data}`
///   (`meta_data` is ignored);
/// - LLM Zoo `questions/multilingual/*100.jsonl`: `{id, label, query}` (`label` is the category);
/// - zoo's native form: `{id, question, category?, lang?}`.
///
/// Blank lines are skipped; ids must be unique in the file.
pub fn read_open_questions(path: &Path) -> Result<Vec<OpenQuestion>> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io { path: path.to_path_buf(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| EvalError::Format {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse_open_questions(&text, path)
}

/// Parses the text of an open-questions file (named `path` in errors); see
/// [`read_open_questions`].
pub fn parse_open_questions(text: &str, path: &Path) -> Result<Vec<OpenQuestion>> {
    let out = id_records(text, path, "id", |v| {
        let q = open_question(v)?;
        Ok((q.id.clone(), q))
    })?;
    if out.is_empty() {
        return Err(EvalError::Format { path: path.to_path_buf(), message: "holds no questions".into() });
    }
    Ok(out)
}

/// The records of a JSON lines file, each read by `record` into (id, item); blank lines are
/// skipped, errors name the record (line, from 1), and an id seen twice is an error naming
/// both records (`what_id`: the field named in that error).
fn id_records<T>(
    text: &str,
    path: &Path,
    what_id: &str,
    mut record: impl FnMut(&Value) -> Result<(String, T), String>,
) -> Result<Vec<T>> {
    let bad = |record: usize, message: String| EvalError::Record { path: path.to_path_buf(), record, message };
    let mut out = Vec::new();
    // Where each id was first seen, to name both records of a duplicate.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| bad(n, format!("not JSON: {e}")))?;
        let (id, item) = record(&v).map_err(|m| bad(n, m))?;
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(bad(n, format!("field `{what_id}`: duplicate id {id:?} (first at record {first})")));
        }
        out.push(item);
    }
    Ok(out)
}

/// A record's id: a non-empty string or an integer.
fn record_id(v: &Value, key: &str) -> Result<String, String> {
    match v.get(key) {
        None => Err(format!("missing field `{key}`")),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::Number(x)) if x.is_i64() || x.is_u64() => Ok(x.to_string()),
        Some(other) => Err(format!("field `{key}` is {}, not an integer or a string", short(&other.to_string()))),
    }
}

fn open_question(v: &Value) -> Result<OpenQuestion, String> {
    if !v.is_object() {
        return Err(format!("not a JSON object: {}", short(&v.to_string())));
    }
    let (id_key, text_key, category_key) = if v.get("question_id").is_some() {
        ("question_id", "text", "category")
    } else if v.get("query").is_some() {
        ("id", "query", "label")
    } else if v.get("question").is_some() {
        ("id", "question", "category")
    } else {
        return Err("not a known open-question record: LLM Zoo's {question_id, text, category, lang}, \
                    LLM Zoo's multilingual {id, label, query} or zoo's {id, question, category?, lang?}"
            .into());
    };
    let id = record_id(v, id_key)?;
    let text = match v.get(text_key) {
        None => return Err(format!("missing field `{text_key}`")),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(format!("field `{text_key}` is empty")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("field `{text_key}` is not a string")),
    };
    let optional = |key: &str| -> Result<Option<String>, String> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("field `{key}` is not a string")),
        }
    };
    Ok(OpenQuestion { id, text, category: optional(category_key)?, lang: optional("lang")? })
}

/// Reads a file of answers to open questions: LLM Zoo's `answer_<model>.jsonl`
/// (`{question_id, text, model_id, ...}`) or zoo's `{id, answer}`; one JSON object a line.
/// Returns (question id, answer) in file order; a question answered twice is an error.
pub fn read_answers(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io { path: path.to_path_buf(), source })?;
    id_records(&text, path, "question_id", |v| {
        if !v.is_object() {
            return Err(format!("not a JSON object: {}", short(&v.to_string())));
        }
        // LLM Zoo's {question_id, text} or zoo's {id, answer}.
        let (id_key, text_key) =
            if v.get("question_id").is_some() { ("question_id", "text") } else { ("id", "answer") };
        let id = record_id(v, id_key)?;
        match v.get(text_key) {
            Some(Value::String(s)) => Ok((id.clone(), (id, s.clone()))),
            Some(_) => Err(format!("field `{text_key}` is not a string")),
            None => Err(format!("missing field `{text_key}`")),
        }
    })
}

/// The first 60 characters of `s`, for error messages.
fn short(s: &str) -> String {
    let mut t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// A judge request: a system prompt, one user message, and the sampling temperature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequestText {
    pub system: String,
    pub user: String,
    pub temperature: f64,
}

/// The version of zoo's ordering instruction, recorded with results.
pub const ORDER_PROMPT_VERSION: &str = "llmzoo-order-v1";

/// The system prompt of the LLM Zoo ordering judge (LLM Zoo's, verbatim).
pub const ORDER_SYSTEM: &str = "You are a helpful and precise assistant for checking the quality of the answer.";

/// `Assistant 1, Assistant 2 and Assistant 3` for `n` = 3.
fn assistant_list(n: usize) -> String {
    let names: Vec<String> = (1..=n).map(|i| format!("Assistant {i}")).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The instruction after `[System]` for `n` answers.
///
/// The wording is zoo's own (`llmzoo-order-v1`): LLM Zoo's text (`prompts/order/prompt_all.json`,
/// the "general" dimension) is not available to us verbatim. What is kept from LLM Zoo is the
/// contract: the number of assistants and their names are stated, the criteria are helpfulness,
/// relevance, accuracy and level of detail, and the last line is an ordering such as
/// `Assistant 1 > Assistant 2 = Assistant 3`, read by [`parse_ordering`]. The layout around it
/// is LLM Zoo's ([`order_prompt`]).
pub fn order_instruction(n: usize) -> String {
    // The example's order alternates `>` and `=` over all n names, so it shows both operators
    // and names every assistant once, as the answer must.
    let example = (1..=n).fold(String::new(), |mut s, i| {
        if i > 1 {
            s.push_str(if i % 2 == 0 { " > " } else { " = " });
        }
        s.push_str(&format!("Assistant {i}"));
        s
    });
    format!(
        "Above are the answers of {n} AI assistants ({list}) to the question. Judge how well each \
         assistant answers it, considering the helpfulness, relevance, accuracy and level of detail \
         of its answer. Do not let the order in which the answers appear or their length decide. \
         First explain your judgement briefly. Then, on the last line and with nothing else on it, \
         order all {n} assistants from best to worst, naming each assistant exactly once and writing \
         \">\" between an assistant and a worse one and \"=\" between equally good ones, for example: \
         {example}\n(The order in the example is only an illustration of the format.)",
        list = assistant_list(n),
    )
}

/// The LLM Zoo ordering request: `[Question]\n{q}\n\n`, then for answer i (1-based)
/// `[Assistant i]\n{answer}\n\n[End of Assistant i]`, the blocks joined by `\n\n`, then
/// `\n\n[System]\n{instruction}\n\n`; LLM Zoo's system prompt, temperature 0.
pub fn order_prompt(question: &str, answers: &[&str]) -> ChatRequestText {
    let blocks: Vec<String> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("[Assistant {n}]\n{a}\n\n[End of Assistant {n}]", n = i + 1))
        .collect();
    let user = format!(
        "[Question]\n{question}\n\n{}\n\n[System]\n{}\n\n",
        blocks.join("\n\n"),
        order_instruction(answers.len())
    );
    ChatRequestText { system: ORDER_SYSTEM.into(), user, temperature: 0.0 }
}

/// Reads the judge's ordering of `n` assistants: the competition rank of each assistant, by
/// index (assistant i+1 at index i): `A1 > A2 = A3 > A4` gives `[1, 2, 2, 4]` (a tie group's
/// rank is 1 + the number of assistants strictly better).
///
/// `>=` and `>>` are read as `>` first. Then the runs `Assistant d ([>=] Assistant d)+`
/// (spaces around the operators optional, d a 1-based number) are found left to right, each
/// as long as it goes, and the first run that names all n assistants exactly once counts, so
/// an explanation that compares two of them before the final line does not decide. (With
/// n = 1, a lone `Assistant 1` counts.) `None` when no run qualifies.
pub fn parse_ordering(text: &str, n: usize) -> Option<Vec<u32>> {
    if n == 0 {
        return None;
    }
    let mut s = text.to_string();
    // Until stable, so `>>>` and `>>=` end as `>` too.
    loop {
        let t = s.replace(">=", ">").replace(">>", ">");
        if t == s {
            break;
        }
        s = t;
    }
    // Every byte matched is ASCII, so byte positions never split a character that matters.
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let Some((run, end)) = run_at(b, i) else {
            i += 1;
            continue;
        };
        if let Some(ranks) = ranks_of(&run, n) {
            return Some(ranks);
        }
        i = end;
    }
    None
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

/// `Assistant d` at `i`: the number and the position after it.
fn assistant_at(b: &[u8], i: usize) -> Option<(u32, usize)> {
    let rest = b.get(i..)?;
    if !rest.starts_with(b"Assistant") {
        return None;
    }
    let start = skip_spaces(b, i + "Assistant".len());
    let mut end = start;
    while b.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    let digits = std::str::from_utf8(b.get(start..end)?).ok()?;
    Some((digits.parse().ok()?, end))
}

/// The longest run at `i`: (operator before, number) per name (the first operator is `>`) and
/// the position after the run.
fn run_at(b: &[u8], i: usize) -> Option<(Vec<(u8, u32)>, usize)> {
    let (first, mut end) = assistant_at(b, i)?;
    let mut run = vec![(b'>', first)];
    loop {
        let k = skip_spaces(b, end);
        let Some(&op) = b.get(k).filter(|&&c| c == b'>' || c == b'=') else { break };
        let Some((m, e)) = assistant_at(b, skip_spaces(b, k + 1)) else { break };
        run.push((op, m));
        end = e;
    }
    Some((run, end))
}

fn ranks_of(run: &[(u8, u32)], n: usize) -> Option<Vec<u32>> {
    if run.len() != n {
        return None;
    }
    let mut ranks = vec![0u32; n];
    let mut group_rank = 1u32;
    for (k, &(op, num)) in run.iter().enumerate() {
        if op == b'>' {
            group_rank = u32::try_from(k + 1).ok()?;
        }
        let slot = ranks.get_mut(usize::try_from(num).ok()?.checked_sub(1)?)?;
        if *slot != 0 {
            return None;
        }
        *slot = group_rank;
    }
    Some(ranks)
}

/// One ordering judgment of one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderJudgment {
    pub question_id: String,
    pub category: Option<String>,
    /// The models as shown to the judge: `models[i]` was Assistant i+1.
    pub models: Vec<String>,
    /// [`parse_ordering`]'s answer, by the same index; `None` when unparsable.
    pub ranks: Option<Vec<u32>>,
}

/// One model's row of an [`OrderSummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderRow {
    pub model: String,
    /// The questions counted: parsed, not skipped, with this model and the reference judged.
    pub questions: usize,
    /// Σ 10 / rank over those questions.
    pub score_sum: f64,
    /// The reference's Σ 10 / rank over the same questions.
    pub reference_score_sum: f64,
    /// `score_sum / reference_score_sum`; `None` when that is 0 (no questions).
    pub ratio: Option<f64>,
    /// Questions where this model's rank is strictly better (smaller) than the reference's,
    /// equal, worse; `None` in the reference's own row.
    pub win: Option<usize>,
    pub tie: Option<usize>,
    pub lose: Option<usize>,
    /// The mean rank over the questions counted; `None` without questions.
    pub avg_rank: Option<f64>,
    /// Unparsable judgments (not skipped) in which this model was shown.
    pub unparsable: usize,
}

/// LLM Zoo's ordering scores (`compute_metric_all.py`) against a reference model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderSummary {
    pub reference: String,
    /// Every judgment given.
    pub judgments: usize,
    /// Skipped for their category (`coding`, `math`).
    pub skipped: usize,
    /// Not skipped and not parsed (or ranks not matching the models shown).
    pub unparsable: usize,
    pub rows: Vec<OrderRow>,
}

/// Whether LLM Zoo leaves a category out of the ordering scores (exactly `coding` and `math`,
/// in any case).
pub fn order_skips(category: Option<&str>) -> bool {
    category.is_some_and(|c| c.eq_ignore_ascii_case("coding") || c.eq_ignore_ascii_case("math"))
}

/// Scores `judgments` for `models` (rows in that order) against `reference`. Per question a
/// model scores 10 / rank; its ratio is its score sum over the reference's, over the questions
/// both were judged in. Questions of category `coding` or `math` are skipped; unparsable
/// judgments (and ones whose ranks do not match the models shown) are counted, not scored.
pub fn order_summary(judgments: &[OrderJudgment], models: &[String], reference: &str) -> OrderSummary {
    #[derive(Default)]
    struct Acc {
        questions: usize,
        sum: f64,
        ref_sum: f64,
        rank_sum: f64,
        win: usize,
        tie: usize,
        lose: usize,
        unparsable: usize,
    }
    let mut acc: BTreeMap<&str, Acc> = models.iter().map(|m| (m.as_str(), Acc::default())).collect();
    let (mut skipped, mut unparsable) = (0, 0);
    for j in judgments {
        if order_skips(j.category.as_deref()) {
            skipped += 1;
            continue;
        }
        let ranks = j.ranks.as_ref().filter(|r| r.len() == j.models.len() && r.iter().all(|&x| x >= 1));
        let Some(ranks) = ranks else {
            unparsable += 1;
            for m in &j.models {
                if let Some(a) = acc.get_mut(m.as_str()) {
                    a.unparsable += 1;
                }
            }
            continue;
        };
        let rank_of = |m: &str| j.models.iter().position(|x| x == m).and_then(|i| ranks.get(i)).copied();
        let Some(ref_rank) = rank_of(reference) else { continue };
        for (m, a) in acc.iter_mut() {
            let Some(rank) = rank_of(m) else { continue };
            a.questions += 1;
            a.sum += 10.0 / f64::from(rank);
            a.ref_sum += 10.0 / f64::from(ref_rank);
            a.rank_sum += f64::from(rank);
            match rank.cmp(&ref_rank) {
                std::cmp::Ordering::Less => a.win += 1,
                std::cmp::Ordering::Equal => a.tie += 1,
                std::cmp::Ordering::Greater => a.lose += 1,
            }
        }
    }
    let rows = models
        .iter()
        .map(|m| {
            let a = acc.remove(m.as_str()).unwrap_or_default();
            let is_ref = m == reference;
            let vs = |x: usize| (!is_ref).then_some(x);
            OrderRow {
                model: m.clone(),
                questions: a.questions,
                score_sum: a.sum,
                reference_score_sum: a.ref_sum,
                ratio: (a.ref_sum > 0.0).then(|| a.sum / a.ref_sum),
                win: vs(a.win),
                tie: vs(a.tie),
                lose: vs(a.lose),
                avg_rank: (a.questions > 0).then(|| a.rank_sum / a.questions as f64),
                unparsable: a.unparsable,
            }
        })
        .collect();
    OrderSummary { reference: reference.into(), judgments: judgments.len(), skipped, unparsable, rows }
}

/// The system prompt of the pairwise judge. FastChat's `pair-v2` text is paraphrased; the
/// contract is kept: an impartial comparison of two assistants' answers, no position, length or
/// name bias, an explanation, then the verdict in FastChat's format (that sentence verbatim).
pub const PAIR_SYSTEM: &str = "You are an impartial judge. Below are a user question and the responses of \
two AI assistants, A and B. Decide which response better follows the user's instructions and better \
answers the question, weighing helpfulness, relevance, accuracy, depth, creativity and level of detail. \
Start by comparing the two responses and give a short explanation. Guard against position bias: the \
order in which the responses appear must not affect your decision. Neither the length of a response nor \
the name of an assistant should sway you. Be as objective as you can. After your explanation, give your \
final verdict strictly in this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is \
better, and \"[[C]]\" for a tie.";

/// The MT-bench pairwise request (FastChat's `pair-v2` user template, verbatim), temperature 0.
pub fn pair_prompt(question: &str, answer_a: &str, answer_b: &str) -> ChatRequestText {
    let user = format!(
        "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's \
         Answer]\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
    );
    ChatRequestText { system: PAIR_SYSTEM.into(), user, temperature: 0.0 }
}

/// A pairwise verdict, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairVerdict {
    A,
    B,
    Tie,
}

/// FastChat's reading: `[[A]]` anywhere → A, else `[[B]]` → B, else `[[C]]` → tie, in that
/// order; `None` (FastChat's "error") otherwise.
pub fn parse_pair_verdict(text: &str) -> Option<PairVerdict> {
    if text.contains("[[A]]") {
        Some(PairVerdict::A)
    } else if text.contains("[[B]]") {
        Some(PairVerdict::B)
    } else if text.contains("[[C]]") {
        Some(PairVerdict::Tie)
    } else {
        None
    }
}

/// The outcome of one question for model 1 against model 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairOutcome {
    Win,
    Tie,
    Lose,
    Unparsable,
}

/// Combines the two games of a question: `g1` with A = model 1, `g2` with the answers swapped
/// (A = model 2). As FastChat's `show_result.py`: a tie when `g1` is a tie or the two games'
/// winners (mapped back to models) differ, else that winner. Zoo's choice: when either game is
/// unparsable the question is [`PairOutcome::Unparsable`], shown in the tally, not dropped and
/// not guessed from the other game.
pub fn pair_outcome(g1: Option<PairVerdict>, g2: Option<PairVerdict>) -> PairOutcome {
    let (Some(g1), Some(g2)) = (g1, g2) else { return PairOutcome::Unparsable };
    // Winners as model 1 (Win), model 2 (Lose) or a tie.
    let w1 = match g1 {
        PairVerdict::A => PairOutcome::Win,
        PairVerdict::B => PairOutcome::Lose,
        PairVerdict::Tie => PairOutcome::Tie,
    };
    let w2 = match g2 {
        PairVerdict::A => PairOutcome::Lose,
        PairVerdict::B => PairOutcome::Win,
        PairVerdict::Tie => PairOutcome::Tie,
    };
    if w1 == PairOutcome::Tie || w1 != w2 { PairOutcome::Tie } else { w1 }
}

/// Model 1 against model 2 over the questions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairTally {
    pub model_1: String,
    pub model_2: String,
    pub win: usize,
    pub tie: usize,
    pub lose: usize,
    pub unparsable: usize,
    /// win + tie + lose (the unparsable left out).
    pub total: usize,
    /// (win + ½·tie) / total; `None` when total is 0.
    pub win_rate_adjusted: Option<f64>,
}

/// Tallies the questions' outcomes of `model_1` against `model_2`.
pub fn pair_tally(model_1: &str, model_2: &str, outcomes: &[PairOutcome]) -> PairTally {
    let count = |o: PairOutcome| outcomes.iter().filter(|&&x| x == o).count();
    let (win, tie, lose) = (count(PairOutcome::Win), count(PairOutcome::Tie), count(PairOutcome::Lose));
    let total = win + tie + lose;
    PairTally {
        model_1: model_1.into(),
        model_2: model_2.into(),
        win,
        tie,
        lose,
        unparsable: count(PairOutcome::Unparsable),
        total,
        win_rate_adjusted: (total > 0).then(|| (win as f64 + 0.5 * tie as f64) / total as f64),
    }
}

/// HuatuoGPT-II's pairwise reading: a judgment ending (after trailing spaces and a final `.`
/// or `。`) with `Assistant 1 is better than Assistant 2` → `[10, 0]`, `… worse than …` →
/// `[0, 10]`, `… equal to …` → `[5, 5]`; `None` otherwise.
pub fn parse_huatuo_pair(text: &str) -> Option<[u32; 2]> {
    let t = text.trim_end().trim_end_matches(['.', '。']).trim_end();
    [("better than", [10, 0]), ("worse than", [0, 10]), ("equal to", [5, 5])]
        .into_iter()
        .find(|(phrase, _)| t.ends_with(&format!("Assistant 1 is {phrase} Assistant 2")))
        .map(|(_, scores)| scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderings_parse_to_competition_ranks() {
        assert_eq!(parse_ordering("Assistant 1 > Assistant 2 = Assistant 3", 3), Some(vec![1, 2, 2]));
        // `>=` and `>>` read as `>`: A2 first, A1 second, A3 third.
        assert_eq!(parse_ordering("Assistant 2 >= Assistant 1 >> Assistant 3", 3), Some(vec![2, 1, 3]));
        assert_eq!(parse_ordering("Assistant 1 > Assistant 2 = Assistant 3 > Assistant 4", 4), Some(vec![1, 2, 2, 4]));
        // Spaces optional; a tie at the top shares rank 1.
        assert_eq!(parse_ordering("Assistant 3=Assistant 1>Assistant 2.", 3), Some(vec![1, 3, 1]));
    }

    #[test]
    fn the_first_full_run_counts() {
        let t = "Assistant 1 > Assistant 2 in accuracy, but Assistant 3 is the most detailed.\n\
                 Assistant 3 > Assistant 1 = Assistant 2\nAssistant 1 > Assistant 2 > Assistant 3";
        assert_eq!(parse_ordering(t, 3), Some(vec![2, 2, 1]));
        // A missing, repeated or unknown assistant is no ordering.
        assert_eq!(parse_ordering("Assistant 1 > Assistant 2", 3), None);
        assert_eq!(parse_ordering("Assistant 1 > Assistant 1 > Assistant 2", 3), None);
        assert_eq!(parse_ordering("Assistant 1 > Assistant 4 > Assistant 2", 3), None);
        assert_eq!(parse_ordering("Assistant 1 > Assistant 2 > Assistant 3 > Assistant 4", 3), None);
        assert_eq!(parse_ordering("All are equally good.", 2), None);
        assert_eq!(parse_ordering("Assistant 1", 0), None);
        assert_eq!(parse_ordering("Only Assistant 1 answered.", 1), Some(vec![1]));
    }

    #[test]
    fn the_order_prompt_layout() {
        let r = order_prompt("Q?", &["a1", "a2"]);
        assert_eq!(r.system, ORDER_SYSTEM);
        assert_eq!(r.temperature, 0.0);
        let head = "[Question]\nQ?\n\n[Assistant 1]\na1\n\n[End of Assistant 1]\n\n[Assistant 2]\na2\n\n\
                    [End of Assistant 2]\n\n[System]\n";
        assert!(r.user.starts_with(head), "{}", r.user);
        assert!(r.user.ends_with("\n\n"));
        assert_eq!(assistant_list(3), "Assistant 1, Assistant 2 and Assistant 3");
        let i = order_instruction(3);
        assert!(i.contains("3 AI assistants (Assistant 1, Assistant 2 and Assistant 3)"), "{i}");
        // The instruction's own example is a valid ordering.
        assert_eq!(parse_ordering(&i, 3), Some(vec![1, 2, 2]));
        assert_eq!(parse_ordering(&order_instruction(4), 4), Some(vec![1, 2, 2, 4]));
    }

    fn j(id: &str, category: &str, models: [&str; 3], ranks: Option<[u32; 3]>) -> OrderJudgment {
        OrderJudgment {
            question_id: id.into(),
            category: Some(category.into()),
            models: models.map(String::from).to_vec(),
            ranks: ranks.map(|r| r.to_vec()),
        }
    }

    /// By hand, reference m1, scores 10 / rank:
    /// q1 [m1, m2, m3] ranks 1,1,3 → m1 10, m2 10, m3 10/3;
    /// q2 [m3, m1, m2] ranks 1,3,2 → m3 10, m1 10/3, m2 5;
    /// q3 math: skipped; q4 unparsable;
    /// q5 [m2, m3, m1] ranks 1,1,3 → m2 10, m3 10, m1 10/3.
    /// Sums: m1 50/3, m2 25, m3 70/3; ratios m2 25/(50/3) = 1.5, m3 (70/3)/(50/3) = 1.4.
    /// Against m1: m2 tie, win, win → 2/1/0; m3 lose, win, win → 2/0/1.
    /// Mean ranks: m1 7/3, m2 4/3, m3 5/3.
    #[test]
    fn ordering_scores_by_hand() {
        let js = [
            j("q1", "generic", ["m1", "m2", "m3"], Some([1, 1, 3])),
            j("q2", "knowledge", ["m3", "m1", "m2"], Some([1, 3, 2])),
            j("q3", "Math", ["m1", "m2", "m3"], Some([1, 2, 3])),
            j("q4", "generic", ["m2", "m1", "m3"], None),
            j("q5", "roleplay", ["m2", "m3", "m1"], Some([1, 1, 3])),
        ];
        let models: Vec<String> = ["m1", "m2", "m3"].map(String::from).to_vec();
        let s = order_summary(&js, &models, "m1");
        assert_eq!((s.judgments, s.skipped, s.unparsable), (5, 1, 1));
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        let [r1, r2, r3] = [&s.rows[0], &s.rows[1], &s.rows[2]];
        assert!(close(Some(r1.score_sum), 50.0 / 3.0) && close(r1.ratio, 1.0));
        assert_eq!((r1.win, r1.tie, r1.lose, r1.questions, r1.unparsable), (None, None, None, 3, 1));
        assert!(close(Some(r2.score_sum), 25.0) && close(r2.ratio, 1.5) && close(r2.avg_rank, 4.0 / 3.0));
        assert_eq!((r2.win, r2.tie, r2.lose), (Some(2), Some(1), Some(0)));
        assert!(close(Some(r3.score_sum), 70.0 / 3.0) && close(r3.ratio, 1.4) && close(r3.avg_rank, 5.0 / 3.0));
        assert_eq!((r3.win, r3.tie, r3.lose), (Some(2), Some(0), Some(1)));
        assert!(close(r1.avg_rank, 7.0 / 3.0));
        // Only exactly `coding` and `math` are skipped.
        assert!(order_skips(Some("CODING")) && !order_skips(Some("code")) && !order_skips(None));
        assert!(serde_json::to_string(&s).unwrap().contains("\"ratio\":1.5"));
    }

    #[test]
    fn ordering_scores_without_the_reference() {
        let js = [
            j("q1", "generic", ["m2", "m3", "m4"], Some([1, 2, 3])),
            j("q2", "generic", ["m1", "m2", "m3"], Some([3, 3, 3])),
        ];
        let s = order_summary(&js, &["m1".into(), "m2".into()], "m1");
        // q1 lacks the reference, so only q2 counts: all tied.
        assert_eq!((s.rows[1].questions, s.rows[1].tie), (1, Some(1)));
        // Ranks that do not match the models shown count as unparsable.
        let bad = OrderJudgment { ranks: Some(vec![1, 2]), ..js[1].clone() };
        assert_eq!(order_summary(&[bad], &["m1".into()], "m1").unparsable, 1);
        let empty = order_summary(&[], &["m1".into()], "m1");
        assert_eq!((empty.rows[0].ratio, empty.rows[0].avg_rank), (None, None));
    }

    #[test]
    fn pair_prompt_and_verdicts() {
        let r = pair_prompt("Q", "a", "b");
        assert_eq!(
            r.user,
            "[User Question]\nQ\n\n[The Start of Assistant A's Answer]\na\n[The End of Assistant A's Answer]\n\n\
             [The Start of Assistant B's Answer]\nb\n[The End of Assistant B's Answer]"
        );
        assert!(r.system.ends_with(
            "\"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie."
        ));
        assert_eq!(parse_pair_verdict("... [[B]]"), Some(PairVerdict::B));
        // In FastChat's order: [[A]] is checked first wherever it is.
        assert_eq!(parse_pair_verdict("[[B]] no, [[A]]"), Some(PairVerdict::A));
        assert_eq!(parse_pair_verdict("[[C]]"), Some(PairVerdict::Tie));
        assert_eq!(parse_pair_verdict("[A]"), None);
    }

    #[test]
    fn pair_games_combine_and_tally() {
        use PairOutcome::*;
        use PairVerdict as V;
        // Both orders agree on model 1 (A in g1, B in g2) → win; on model 2 → lose.
        assert_eq!(pair_outcome(Some(V::A), Some(V::B)), Win);
        assert_eq!(pair_outcome(Some(V::B), Some(V::A)), Lose);
        // The judge prefers position A both times: the games disagree → tie.
        assert_eq!(pair_outcome(Some(V::A), Some(V::A)), Tie);
        assert_eq!(pair_outcome(Some(V::Tie), Some(V::B)), Tie);
        assert_eq!(pair_outcome(Some(V::A), Some(V::Tie)), Tie);
        assert_eq!(pair_outcome(None, Some(V::B)), Unparsable);
        assert_eq!(pair_outcome(Some(V::A), None), Unparsable);
        // 3 wins, 2 ties, 1 loss, 1 unparsable: (3 + 1) / 6.
        let t = pair_tally("x", "y", &[Win, Win, Win, Tie, Tie, Lose, Unparsable]);
        assert_eq!((t.win, t.tie, t.lose, t.unparsable, t.total), (3, 2, 1, 1, 6));
        assert_eq!(t.win_rate_adjusted, Some(4.0 / 6.0));
        assert_eq!(pair_tally("x", "y", &[Unparsable]).win_rate_adjusted, None);
    }

    #[test]
    fn huatuo_phrases() {
        assert_eq!(parse_huatuo_pair("Reasons...\nAssistant 1 is better than Assistant 2."), Some([10, 0]));
        assert_eq!(parse_huatuo_pair("Assistant 1 is worse than Assistant 2 \n"), Some([0, 10]));
        assert_eq!(parse_huatuo_pair("So Assistant 1 is equal to Assistant 2"), Some([5, 5]));
        assert_eq!(parse_huatuo_pair("Assistant 1 is better than Assistant 2, mostly. Unclear."), None);
    }

    fn read(text: &str) -> Result<Vec<OpenQuestion>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        std::fs::write(&path, text).unwrap();
        read_open_questions(&path)
    }

    #[test]
    fn answer_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(
            &path,
            "{\"question_id\": 1, \"text\": \"Yes.\", \"model_id\": \"gpt-3.5-turbo\"}\n{\"id\": \"q2\", \"answer\": \"No.\"}\n",
        )
        .unwrap();
        let got = read_answers(&path).unwrap();
        assert_eq!(got, vec![("1".to_string(), "Yes.".to_string()), ("q2".to_string(), "No.".to_string())]);
        std::fs::write(&path, "{\"id\": 1, \"answer\": \"a\"}\n{\"id\": 2, \"answer\": 3}\n").unwrap();
        let e = read_answers(&path).unwrap_err().to_string();
        assert!(e.contains("record 2") && e.contains("`answer` is not a string"), "{e}");
        std::fs::write(&path, "{\"id\": 1, \"answer\": \"a\"}\n\n{\"id\": 1, \"answer\": \"b\"}\n").unwrap();
        let e = read_answers(&path).unwrap_err().to_string();
        assert!(e.contains("record 3") && e.contains("first at record 1"), "{e}");
    }

    #[test]
    fn open_question_files() {
        let zoo = "{\"question_id\": 1, \"text\": \"How?\", \"category\": \"generic\", \"lang\": \"en\", \"meta_data\": {}}\n\n\
                   {\"question_id\": 2, \"text\": \"为什么？\", \"category\": \"math\", \"lang\": \"zh\"}\n";
        let q = read(zoo).unwrap();
        assert_eq!(
            q[0],
            OpenQuestion {
                id: "1".into(),
                text: "How?".into(),
                category: Some("generic".into()),
                lang: Some("en".into())
            }
        );
        assert_eq!((q[1].id.as_str(), q[1].category.as_deref()), ("2", Some("math")));
        let multi = read("{\"id\": 7, \"label\": \"writing\", \"query\": \"Écris.\"}").unwrap();
        assert_eq!(
            (multi[0].id.as_str(), multi[0].category.as_deref(), multi[0].lang.as_deref()),
            ("7", Some("writing"), None)
        );
        let native = read("{\"id\": \"a-1\", \"question\": \"Q\", \"lang\": \"fr\"}").unwrap();
        assert_eq!((native[0].id.as_str(), native[0].text.as_str(), native[0].category.as_deref()), ("a-1", "Q", None));
    }

    #[test]
    fn bad_open_questions_name_the_line_and_field() {
        let e = read("{\"id\": \"a\", \"question\": \"Q\"}\n\n{\"id\": \"b\", \"question\": 3}").unwrap_err();
        assert!(e.to_string().ends_with("q.jsonl: record 3: field `question` is not a string"), "{e}");
        let e = read("{\"question_id\": 1.5, \"text\": \"Q\"}").unwrap_err();
        assert!(e.to_string().contains("record 1: field `question_id` is 1.5"), "{e}");
        let e = read("{\"query\": \"Q\"}").unwrap_err();
        assert!(e.to_string().contains("record 1: missing field `id`"), "{e}");
        let e = read("{\"id\": 1, \"query\": \"Q\"}\n{\"id\": \"1\", \"query\": \"R\"}").unwrap_err();
        assert!(e.to_string().contains("record 2: field `id`: duplicate id \"1\" (first at record 1)"), "{e}");
        let e = read("{\"id\": 1, \"query\": \"  \"}").unwrap_err();
        assert!(e.to_string().contains("field `query` is empty"), "{e}");
        assert!(read("{\"x\": 1}").unwrap_err().to_string().contains("not a known open-question record"));
        assert!(read("[1]").unwrap_err().to_string().contains("not a JSON object"));
        assert!(read("{oops").unwrap_err().to_string().contains("record 1: not JSON"));
        assert!(read("\n\n").unwrap_err().to_string().contains("holds no questions"));
    }
}
