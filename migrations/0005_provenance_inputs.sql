-- One provenance shape for everything zoo records (local copies and measured results): what
-- operation made it and from which inputs (repos, commits, files, models, packages).
ALTER TABLE eval_runs ADD COLUMN operation TEXT;
ALTER TABLE eval_runs ADD COLUMN inputs TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(inputs));
