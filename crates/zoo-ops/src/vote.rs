//! Human votes (`zoo eval vote`, and the TUI's vote screen): two contestants' answers to each
//! open question, shown in a seeded random order with the names hidden; each vote is stored in
//! the registry the moment it is cast, so a session can stop anywhere and continue; tallies as
//! in LLM Zoo's human-evaluation table (win / tie / lose of A against B).
//!
//! The front end owns the screen and the keys: [`prepare`] gives it the questions still to vote
//! on with both answers and which side each is shown on, [`VoteSession::cast`] stores one vote,
//! [`tally`] counts them.

use serde::Serialize;
use zoo_eval::judge::OpenQuestion;
use zoo_eval::votes::{self, Vote, VoteTally};
use zoo_registry::{Registry, StoredVote};

use crate::judge::{AnswerSettings, Contestant, answers_of, read_questions};
use crate::{Control, OpsError, Result, Zoo};

#[derive(Debug, Clone)]
pub struct VoteRequest {
    pub questions: std::path::PathBuf,
    pub a: Contestant,
    pub b: Contestant,
    /// Who votes (votes are kept per voter; voting again replaces one's own vote).
    pub voter: String,
    /// Seeds which side each answer is shown on.
    pub seed: u64,
    pub limit: Option<usize>,
    /// For answers generated here.
    pub max_tokens: usize,
    pub threads: Option<usize>,
}

/// One question to vote on.
#[derive(Debug, Clone, Serialize)]
pub struct Ballot {
    pub question: OpenQuestion,
    /// Shown on the left / right (names hidden from the voter).
    pub left: String,
    pub right: String,
    /// Whether A's answer is on the left.
    pub a_shown_left: bool,
}

/// A voting session: the ballots not voted on yet by this voter, and the registry the votes go
/// to (open for the whole session: a vote is one statement, not a new connection).
#[derive(Debug, Clone, Serialize)]
pub struct VoteSession {
    #[serde(skip)]
    reg: Registry,
    pub questions_sha256: String,
    pub model_a: String,
    pub model_b: String,
    pub voter: String,
    /// Questions selected, and those this voter already voted on.
    pub total: usize,
    pub already: usize,
    pub ballots: Vec<Ballot>,
}

/// Loads both contestants' answers (generating a local model's where not stored) and the
/// voter's earlier votes.
pub async fn prepare(zoo: &Zoo, req: &VoteRequest, ctl: &Control) -> Result<VoteSession> {
    let (mut questions, qsha) = read_questions(&req.questions).await?;
    if let Some(n) = req.limit {
        questions.truncate(n);
    }
    let reg = zoo.registry().await?;
    let settings =
        AnswerSettings { questions: req.questions.clone(), max_tokens: req.max_tokens, threads: req.threads };
    let a = answers_of(zoo, &reg, &req.a, &settings, &questions, &qsha, ctl).await?;
    let b = answers_of(zoo, &reg, &req.b, &settings, &questions, &qsha, ctl).await?;
    let (name_a, name_b) = (a.report.name.clone(), b.report.name.clone());
    if name_a.eq_ignore_ascii_case(&name_b) {
        reg.close().await;
        return Err(OpsError::Invalid(format!("both contestants are {name_a:?}")));
    }
    let done: Vec<String> = reg
        .votes(Some(&qsha))
        .await?
        .into_iter()
        .filter(|v| v.voter == req.voter && v.model_a == name_a && v.model_b == name_b)
        .map(|v| v.question_id)
        .collect();
    let total = questions.len();
    let mut ballots = Vec::new();
    for q in questions {
        if done.contains(&q.id) {
            continue;
        }
        let left_is_a = votes::shown_left(req.seed, &q.id, &name_a, &name_b);
        let (ta, tb) = (a.by_id[&q.id].clone(), b.by_id[&q.id].clone());
        let (left, right) = if left_is_a { (ta, tb) } else { (tb, ta) };
        ballots.push(Ballot { question: q, left, right, a_shown_left: left_is_a });
    }
    Ok(VoteSession {
        reg,
        questions_sha256: qsha,
        model_a: name_a,
        model_b: name_b,
        voter: req.voter.clone(),
        total,
        already: total - ballots.len(),
        ballots,
    })
}

impl VoteSession {
    /// Stores one vote (A against B), replacing this voter's earlier vote on the question.
    pub async fn cast(&self, ballot: &Ballot, vote: Vote) -> Result<()> {
        let v = StoredVote {
            questions_sha256: self.questions_sha256.clone(),
            question_id: ballot.question.id.clone(),
            model_a: self.model_a.clone(),
            model_b: self.model_b.clone(),
            vote: match vote {
                Vote::Win => "win",
                Vote::Tie => "tie",
                Vote::Lose => "lose",
            }
            .into(),
            a_shown_left: ballot.a_shown_left,
            voter: self.voter.clone(),
            recorded_at: crate::now_rfc3339(),
        };
        Ok(self.reg.record_vote(&v).await?)
    }

    /// The tallies of this question set, then the registry closed.
    pub async fn finish(self) -> Result<Vec<VoteTally>> {
        let t = tally_in(&self.reg, Some(&self.questions_sha256)).await;
        self.reg.close().await;
        t
    }
}

/// The votes stored (on one question set, or all), tallied per pair.
pub async fn tally(zoo: &Zoo, questions_sha256: Option<&str>) -> Result<Vec<VoteTally>> {
    let reg = zoo.registry().await?;
    let t = tally_in(&reg, questions_sha256).await;
    reg.close().await;
    t
}

/// [`tally`] on an open registry.
pub async fn tally_in(reg: &Registry, questions_sha256: Option<&str>) -> Result<Vec<VoteTally>> {
    let stored = reg.votes(questions_sha256).await?;
    let parsed: Vec<(String, String, Vote)> = stored
        .into_iter()
        .filter_map(|v| {
            let vote = match v.vote.as_str() {
                "win" => Vote::Win,
                "tie" => Vote::Tie,
                "lose" => Vote::Lose,
                _ => return None,
            };
            Some((v.model_a, v.model_b, vote))
        })
        .collect();
    Ok(votes::tally(&parsed))
}
