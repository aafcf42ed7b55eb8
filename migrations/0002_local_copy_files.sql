-- Version 2: what a local copy holds, file by file, so `zoo verify` can re-hash it, and the
-- catalog facts a user-added model needs. Written by `zoo pull` (delta targets), `zoo add`.

CREATE TABLE local_copy_files (
    copy_id INTEGER NOT NULL REFERENCES local_copies (id) ON DELETE CASCADE,
    path    TEXT NOT NULL,
    size    INTEGER NOT NULL,
    sha256  TEXT NOT NULL CHECK (length(sha256) = 64),
    PRIMARY KEY (copy_id, path)
) WITHOUT ROWID;

CREATE INDEX local_copies_model ON local_copies (model);
