-- expect: statements-after-access-exclusive
-- The two ALTERs cannot be merged (the backfill needs the column first); the backfill itself
-- runs under the first ALTER's lock.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS region text;
UPDATE orders SET region = 'eu' WHERE region IS NULL AND id < 100000;
ALTER TABLE orders ALTER COLUMN region SET DEFAULT 'eu';
