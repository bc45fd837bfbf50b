-- expect: transaction-nesting
-- psql style: pgsafe accepts only a BEGIN ... COMMIT around the whole file.
SET lock_timeout = '2s';
BEGIN;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
COMMIT;
