-- expect: changing-column-type
-- A different scale is not binary-coercible: PostgreSQL rewrites every row.
ALTER TABLE invoices ADD COLUMN tax numeric(10, 2);
ALTER TABLE invoices ALTER COLUMN tax TYPE numeric(12, 4);
