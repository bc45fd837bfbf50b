-- expect: ban-duplicate-column-assignments
UPDATE orders SET status = 'shipped', shipped_at = now(), status = 'delivered' WHERE id = 42;
