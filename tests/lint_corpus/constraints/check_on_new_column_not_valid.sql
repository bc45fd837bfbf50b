-- expect: multiple-alter-table
-- The safe form: NOT VALID checks new rows only, no scan.
ALTER TABLE orders ADD COLUMN discount numeric;
ALTER TABLE orders ADD CONSTRAINT orders_discount_positive CHECK (discount >= 0) NOT VALID;
