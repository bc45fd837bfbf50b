-- expect: require-timeout-settings
-- enable: require-timeout-settings
-- statement_timeout = 0 turns the timeout off: it is not a setting.
SET lock_timeout = '2s';
SET statement_timeout = 0;
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_placed_at_idx ON orders (placed_at);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
