-- expect: none
-- enable: require-timeout-settings
BEGIN;
SET LOCAL lock_timeout = '2s';
SET LOCAL statement_timeout = '60s';
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
COMMIT;
