-- Version 3: how a model's parameter count was decided (catalog key `params_source`):
-- 'config' (counted from the architecture's shapes), 'card' (a published figure) or 'name'
-- (the size the name gives). NULL when `params` is NULL, and for local models.

ALTER TABLE models ADD COLUMN params_source TEXT CHECK (params_source IN ('config', 'card', 'name'));

-- Catalog rows synced by an older zoo lack the column's value: forget the catalog hash and the
-- models' record hashes so the next start syncs again and rewrites every catalog model.
DELETE FROM meta WHERE key = 'catalog_hash';
UPDATE models SET record_hash = '' WHERE origin = 'catalog';
