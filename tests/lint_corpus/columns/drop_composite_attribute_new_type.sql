-- expect: none
-- The type is created in this file: no stored values yet.
CREATE TYPE money_amount AS (value numeric, currency text, note text);
ALTER TYPE money_amount DROP ATTRIBUTE note;
