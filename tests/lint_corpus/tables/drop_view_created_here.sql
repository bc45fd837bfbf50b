-- expect: none
-- A helper view this migration created and dropped again: nobody used it.
CREATE VIEW orders_to_fix AS SELECT id FROM orders WHERE total < 0;
UPDATE orders SET total = 0 WHERE id IN (SELECT id FROM orders_to_fix);
DROP VIEW orders_to_fix;
