-- expect: none
-- enable: require-timeout-settings
SET lock_timeout = '2s';
SET statement_timeout = '60s';
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
