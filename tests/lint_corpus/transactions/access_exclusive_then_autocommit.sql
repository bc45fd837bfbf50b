-- expect: none
-- pgsafe commits before CREATE INDEX CONCURRENTLY: the ALTER's lock is released by then.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS region text;
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_region_idx ON orders (region);
