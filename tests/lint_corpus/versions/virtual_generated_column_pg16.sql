-- A virtual generated column (PostgreSQL 18) on a PostgreSQL 16 target: the server would refuse
-- the statement with a syntax error, after the statements before it ran.
-- expect: requires-newer-postgres
-- pg-version: 16
SET lock_timeout = '2s';
CREATE TABLE invoices (id bigint PRIMARY KEY, net numeric NOT NULL);
ALTER TABLE invoices ADD COLUMN gross numeric GENERATED ALWAYS AS (net * 1.2) VIRTUAL;
