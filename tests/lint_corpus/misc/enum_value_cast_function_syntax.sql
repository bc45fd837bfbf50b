-- expect: ban-enum-value-used-in-same-transaction
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'packed' AFTER 'paid';
SELECT count(*) FROM orders WHERE status = CAST('packed' AS public.order_status);
