-- expect: none
CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY, amount numeric(10, 2));
ALTER TABLE ledger ALTER COLUMN amount TYPE numeric(12, 4);
ALTER TABLE ledger ALTER COLUMN id TYPE numeric;
