-- expect: statements-after-access-exclusive
-- Waiting for customers' lock while holding orders' ACCESS EXCLUSIVE blocks orders meanwhile.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS note text;
