-- Measured evaluations as they run. A job is one configuration (its `key`: sha256 over what
-- decides the numbers: model hash, questions file hash, selection, prompt format, mode, seed,
-- settings); each scored question is a row written as it is made, so a killed run continues
-- where it stopped and never scores a question twice. A finished job points at the measured
-- result it recorded in eval_runs.
CREATE TABLE eval_jobs (
    id            INTEGER PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    model         TEXT NOT NULL,
    model_hash    TEXT,
    benchmark     TEXT,
    data_path     TEXT NOT NULL,
    data_sha256   TEXT NOT NULL,
    selection     TEXT NOT NULL,
    prompt_format TEXT NOT NULL,
    mode          TEXT NOT NULL,
    seed          INTEGER,
    total         INTEGER NOT NULL,
    zoo_version   TEXT NOT NULL,
    settings      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    run_id        INTEGER REFERENCES eval_runs (id) ON DELETE SET NULL
);

CREATE TABLE eval_predictions (
    job_id   INTEGER NOT NULL REFERENCES eval_jobs (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    subset   TEXT NOT NULL,
    language TEXT,
    pred     TEXT,
    gold     TEXT NOT NULL,
    correct  INTEGER NOT NULL CHECK (correct IN (0, 1)),
    detail   TEXT CHECK (detail IS NULL OR json_valid(detail)),
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
