-- The zoo registry, version 1.
-- Catalog-derived rows (families, models, datasets, benchmarks, published results) are
-- rewritten by `zoo registry sync`; rows with origin 'local' or 'measured' are the user's and
-- sync never touches them. Every measured number keeps how it was made (provenance columns).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE families (
    name         TEXT PRIMARY KEY NOT NULL,
    title        TEXT NOT NULL,
    organization TEXT,
    homepage     TEXT,
    description  TEXT,
    source_file  TEXT NOT NULL,
    record_hash  TEXT NOT NULL
);

CREATE TABLE models (
    name              TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
    display_name      TEXT,
    family            TEXT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('full', 'delta', 'quantized', 'api')),
    arch              TEXT,
    hf_architecture   TEXT,
    hf_repo           TEXT,
    revision          TEXT,
    base              TEXT COLLATE NOCASE,
    backbone          TEXT,
    delta_algorithm   TEXT CHECK (delta_algorithm IN ('fastchat', 'llmzoo', 'huatuo')),
    params            REAL,
    dtype             TEXT,
    languages         TEXT NOT NULL DEFAULT '[]',  -- JSON array, in catalog order
    license           TEXT,
    chat_template     TEXT,
    context_length    INTEGER,
    quantization      TEXT,                         -- JSON object or NULL
    open_model        INTEGER,
    open_data         INTEGER,
    claimed_languages TEXT,
    instruction_data  TEXT,
    conversation_data TEXT,
    release_date      TEXT,
    description       TEXT,
    homepage          TEXT,
    paper             TEXT,
    source            TEXT,
    origin            TEXT NOT NULL DEFAULT 'catalog' CHECK (origin IN ('catalog', 'local')),
    source_file       TEXT,
    source_line       INTEGER,
    record_hash       TEXT NOT NULL,
    CHECK ((kind = 'delta') = (delta_algorithm IS NOT NULL))
);
CREATE INDEX models_family ON models (family);
CREATE INDEX models_kind ON models (kind);
CREATE INDEX models_arch ON models (arch);
CREATE INDEX models_base ON models (base);
CREATE INDEX models_hf_repo ON models (hf_repo);

-- One row per (model, language): what `--lang` filters on.
CREATE TABLE model_languages (
    model TEXT NOT NULL COLLATE NOCASE REFERENCES models (name) ON DELETE CASCADE ON UPDATE CASCADE,
    lang  TEXT NOT NULL,
    PRIMARY KEY (lang, model)
) WITHOUT ROWID;

CREATE TABLE model_files (
    model  TEXT NOT NULL COLLATE NOCASE REFERENCES models (name) ON DELETE CASCADE ON UPDATE CASCADE,
    path   TEXT NOT NULL,
    size   INTEGER,
    sha256 TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
    PRIMARY KEY (model, path)
) WITHOUT ROWID;

-- Copies of a model on this machine (filled by pull/add/verify in later versions).
CREATE TABLE local_copies (
    id          INTEGER PRIMARY KEY,
    model       TEXT NOT NULL COLLATE NOCASE,
    path        TEXT NOT NULL,
    revision    TEXT,
    sha256      TEXT,
    size        INTEGER,
    derived_from TEXT,           -- JSON: how it was made (e.g. delta + base hashes)
    verified_at TEXT,
    UNIQUE (model, path)
);

CREATE TABLE datasets (
    name        TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    hf_repo     TEXT,
    kind        TEXT,
    languages   TEXT NOT NULL DEFAULT '[]',
    license     TEXT,
    description TEXT,
    source      TEXT,
    record_hash TEXT NOT NULL
);

CREATE TABLE benchmarks (
    name        TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    dataset     TEXT,
    metric      TEXT NOT NULL,
    description TEXT,
    source      TEXT,
    columns     TEXT NOT NULL,   -- JSON array of {key, label, lang, aggregate}, in order
    record_hash TEXT NOT NULL
);

-- One set of numbers of one model on one benchmark. Published runs come from the catalog;
-- measured runs are recorded by zoo (or imported) with their provenance.
CREATE TABLE eval_runs (
    id            INTEGER PRIMARY KEY,
    origin        TEXT NOT NULL CHECK (origin IN ('published', 'measured')),
    model         TEXT NOT NULL COLLATE NOCASE,
    benchmark     TEXT NOT NULL,
    opponent      TEXT COLLATE NOCASE,
    source        TEXT,
    model_hash    TEXT,
    prompt_format TEXT,
    mode          TEXT,
    seed          INTEGER,
    zoo_version   TEXT,
    notes         TEXT,
    recorded_at   TEXT,
    record_hash   TEXT NOT NULL
);
CREATE INDEX eval_runs_model ON eval_runs (model, benchmark);
CREATE INDEX eval_runs_benchmark ON eval_runs (benchmark, origin);

CREATE TABLE scores (
    run_id INTEGER NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
    column_key TEXT NOT NULL,
    value  REAL NOT NULL,
    PRIMARY KEY (run_id, column_key)
) WITHOUT ROWID;
