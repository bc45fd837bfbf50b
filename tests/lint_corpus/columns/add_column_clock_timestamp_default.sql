-- expect: adding-field-with-default
-- hazards: rewrites-table
ALTER TABLE events ADD COLUMN seen_at timestamptz NOT NULL DEFAULT clock_timestamp();
