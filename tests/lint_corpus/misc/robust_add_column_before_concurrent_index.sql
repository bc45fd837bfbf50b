-- expect: prefer-robust-stmts
-- hazards: not-idempotent
-- ADD COLUMN commits before the index build; if the build fails, the re-run fails here.
ALTER TABLE accounts ADD COLUMN billing_email text;
CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_billing_email_idx ON accounts (billing_email);
