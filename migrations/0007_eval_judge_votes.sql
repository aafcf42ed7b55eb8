-- Open-question answers, judge verdicts and human votes (`zoo eval judge`, `zoo eval vote`).
-- Answers and judgments belong to an eval_jobs row (kind 'answers' or 'judge'), each written as
-- it is made, so a killed run continues where it stopped and never asks twice. A vote is one row
-- per (question set, question, ordered pair, voter); voting again replaces it.
CREATE TABLE eval_answers (
    job_id      INTEGER NOT NULL REFERENCES eval_jobs (id) ON DELETE CASCADE,
    question_id TEXT NOT NULL,
    answer      TEXT NOT NULL,
    PRIMARY KEY (job_id, question_id)
) WITHOUT ROWID;

CREATE TABLE eval_judgments (
    job_id      INTEGER NOT NULL REFERENCES eval_jobs (id) ON DELETE CASCADE,
    question_id TEXT NOT NULL,
    -- 0; pairwise judging also has 1, the same two answers shown the other way round.
    game        INTEGER NOT NULL CHECK (game IN (0, 1)),
    -- The models in the order the judge saw their answers (Assistant 1, 2, ... or A, B).
    shown       TEXT NOT NULL CHECK (json_valid(shown)),
    output      TEXT NOT NULL,
    -- What was read from the output (ranks, or "A"/"B"/"tie"); NULL when it could not be parsed.
    verdict     TEXT CHECK (verdict IS NULL OR json_valid(verdict)),
    PRIMARY KEY (job_id, question_id, game)
) WITHOUT ROWID;

CREATE TABLE eval_votes (
    id               INTEGER PRIMARY KEY,
    questions_sha256 TEXT NOT NULL,
    question_id      TEXT NOT NULL,
    model_a          TEXT NOT NULL,
    model_b          TEXT NOT NULL,
    -- Model A against model B.
    vote             TEXT NOT NULL CHECK (vote IN ('win', 'tie', 'lose')),
    a_shown_left     INTEGER NOT NULL CHECK (a_shown_left IN (0, 1)),
    voter            TEXT NOT NULL DEFAULT '',
    recorded_at      TEXT NOT NULL,
    UNIQUE (questions_sha256, question_id, model_a, model_b, voter)
);
