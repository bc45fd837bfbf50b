-- expect: ban-validate-in-same-transaction
-- hazards: blocks-reads
-- pgsafe runs the whole file as one transaction: the VALIDATE scans under the ADD's lock.
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_positive CHECK (balance >= 0) NOT VALID;
ALTER TABLE accounts VALIDATE CONSTRAINT accounts_balance_positive;
