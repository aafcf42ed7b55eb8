-- Version 8: a model's recommended sampling settings (catalog table `sampling`: temperature,
-- top_p, top_k, repetition_penalty and where they come from), as a JSON object (read in Rust,
-- like `mirrors`). `zoo chat`, `zoo run` and `zoo serve` use them where the user and the model's
-- own generation_config.json name none. NULL when the catalog names none.

ALTER TABLE models ADD COLUMN sampling TEXT;

-- Catalog rows synced by an older zoo lack the column's value: forget the catalog hash and the
-- models' record hashes so the next start syncs again and rewrites every catalog model.
DELETE FROM meta WHERE key = 'catalog_hash';
UPDATE models SET record_hash = '' WHERE origin = 'catalog';
