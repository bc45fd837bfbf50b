-- expect: ban-enum-value-used-in-same-transaction
-- ERROR: unsafe use of new value "packed" of enum type order_status
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'packed' AFTER 'paid';
UPDATE orders SET status = 'packed'::order_status WHERE packed_at IS NOT NULL AND status = 'paid';
