-- expect: none
-- The ACCESS EXCLUSIVE statement comes last: the lock is held for milliseconds.
CREATE TABLE order_notes (order_id bigint, body text);
UPDATE customers SET tier = 'gold' WHERE lifetime_value > 10000;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
