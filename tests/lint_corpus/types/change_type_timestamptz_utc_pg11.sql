-- expect: changing-column-type
-- pg-version: 11
-- The UTC shortcut arrived in PostgreSQL 12.
SET TIME ZONE 'UTC';
ALTER TABLE events ALTER COLUMN occurred_at TYPE timestamptz;
