-- expect: transaction-nesting, prefer-robust-stmts
-- The whole recipe in one file, each step in its own transaction.
BEGIN;
ALTER TABLE orders ADD CONSTRAINT orders_region_present CHECK (region IS NOT NULL) NOT VALID;
COMMIT;
BEGIN;
ALTER TABLE orders VALIDATE CONSTRAINT orders_region_present;
ALTER TABLE orders ALTER COLUMN region SET NOT NULL;
COMMIT;
