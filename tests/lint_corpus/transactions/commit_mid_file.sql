-- expect: transaction-nesting
-- The second ALTER runs after the COMMIT, outside the migration's transaction.
BEGIN;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
COMMIT;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS note text;
