-- expect: none
-- 'packed' is assigned to and compared with orders.status, whose type this file does not show:
-- pgsafe cannot tell it from a text column holding the same word, so it does not report it
-- (if status is the enum, PostgreSQL fails with: unsafe use of new value "packed"). Casting
-- the literal ('packed'::order_status) makes the use visible; see enum_value_cast_same_transaction.
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'packed' AFTER 'paid';
UPDATE orders SET status = 'packed' WHERE packed_at IS NOT NULL AND status = 'paid';
