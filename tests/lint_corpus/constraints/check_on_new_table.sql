-- expect: none
CREATE TABLE ledger (id bigint, amount numeric);
ALTER TABLE ledger ADD CONSTRAINT ledger_amount_positive CHECK (amount > 0);
