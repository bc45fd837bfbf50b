-- expect: none
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_positive CHECK (balance >= 0) NOT VALID;
