-- expect: ban-uncommitted-transaction
BEGIN;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
