-- expect: ban-validate-in-same-transaction
-- hazards: blocks-reads
-- One ALTER TABLE that adds the CHECK NOT VALID and validates it: the scan runs under the
-- ACCESS EXCLUSIVE lock of the ADD, as if NOT VALID had not been written.
ALTER TABLE accounts
  ADD CONSTRAINT accounts_balance_positive CHECK (balance >= 0) NOT VALID,
  VALIDATE CONSTRAINT accounts_balance_positive;
