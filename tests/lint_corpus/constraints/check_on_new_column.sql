-- expect: constraint-missing-not-valid, multiple-alter-table
-- hazards: blocks-reads
-- NULLs pass the check, but every existing row is still scanned under ACCESS EXCLUSIVE.
ALTER TABLE orders ADD COLUMN discount numeric;
ALTER TABLE orders ADD CONSTRAINT orders_discount_positive CHECK (discount >= 0);
