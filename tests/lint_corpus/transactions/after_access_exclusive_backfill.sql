-- expect: statements-after-access-exclusive
-- hazards: blocks-reads, blocks-writes
-- The backfill runs while ADD COLUMN's ACCESS EXCLUSIVE lock is still held.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS status_v2 text;
UPDATE orders SET status_v2 = status WHERE status_v2 IS NULL;
