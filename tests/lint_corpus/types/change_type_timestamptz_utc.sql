-- expect: none
-- PostgreSQL 12+: timestamp -> timestamptz needs no rewrite when the session time zone is UTC.
SET TIME ZONE 'UTC';
ALTER TABLE events ALTER COLUMN occurred_at TYPE timestamptz;
