-- expect: constraint-missing-not-valid
-- hazards: blocks-reads, blocks-writes, may-fail-on-data
ALTER TABLE accounts ADD CONSTRAINT accounts_balance_positive CHECK (balance >= 0);
