-- expect: none
-- Three key columns; INCLUDE columns are not searched and do not count.
CREATE INDEX CONCURRENTLY orders_lookup_idx ON orders (customer_id, status, created_at)
    INCLUDE (total, currency);
