-- The same virtual generated column on a PostgreSQL 18 target: valid syntax there.
-- expect: none
-- pg-version: 18
SET lock_timeout = '2s';
CREATE TABLE invoices (id bigint PRIMARY KEY, net numeric NOT NULL);
ALTER TABLE invoices ADD COLUMN gross numeric GENERATED ALWAYS AS (net * 1.2) VIRTUAL;
