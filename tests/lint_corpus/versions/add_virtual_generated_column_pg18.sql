-- A virtual generated column (PostgreSQL 18) is computed on read: adding it to an existing
-- table rewrites nothing, unlike a STORED one (adding-stored-generated-column).
-- expect: none
-- pg-version: 18
SET lock_timeout = '2s';
ALTER TABLE invoices ADD COLUMN gross numeric GENERATED ALWAYS AS (net * 1.2) VIRTUAL;
