-- expect: multiple-alter-table
-- now() and CURRENT_TIMESTAMP are STABLE: evaluated once, stored in the catalog, no rewrite (PG 11+).
ALTER TABLE users ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE users ADD COLUMN updated_at timestamptz DEFAULT CURRENT_TIMESTAMP;
ALTER TABLE users ADD COLUMN touched_at timestamptz DEFAULT statement_timestamp();
