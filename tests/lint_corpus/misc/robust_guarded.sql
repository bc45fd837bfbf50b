-- expect: none
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS billing_email text,
  DROP CONSTRAINT IF EXISTS accounts_billing_email_check,
  ADD CONSTRAINT accounts_billing_email_check CHECK (billing_email LIKE '%@%') NOT VALID;
CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_billing_email_idx ON accounts (billing_email);
