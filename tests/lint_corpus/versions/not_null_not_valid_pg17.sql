-- A NOT NULL table constraint with NOT VALID is PostgreSQL 18 syntax; the target runs 17.
-- expect: requires-newer-postgres
-- pg-version: 17
SET lock_timeout = '2s';
CREATE TABLE accounts (id bigint PRIMARY KEY, email text);
ALTER TABLE accounts ADD CONSTRAINT accounts_email_not_null NOT NULL email NOT VALID;
