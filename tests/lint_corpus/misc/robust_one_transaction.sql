-- expect: none
-- No autocommit step: pgsafe runs it as one transaction, so a failure leaves nothing behind.
ALTER TABLE accounts ADD COLUMN billing_email text;
CREATE TABLE account_notes (account_id bigint, body text);
