-- expect: transaction-nesting
-- hazards: not-transactional
BEGIN;
BEGIN;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
COMMIT;
COMMIT;
