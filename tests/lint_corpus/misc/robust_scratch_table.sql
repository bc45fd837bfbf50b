-- expect: none
-- The scratch table is gone again before anything commits.
CREATE TABLE scratch_ids (id bigint);
INSERT INTO scratch_ids SELECT id FROM accounts WHERE billing_email IS NULL;
DROP TABLE scratch_ids;
CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_billing_email_idx ON accounts (billing_email);
