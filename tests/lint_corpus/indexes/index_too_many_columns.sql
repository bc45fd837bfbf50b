-- expect: index-too-many-columns
CREATE INDEX CONCURRENTLY orders_lookup_idx ON orders (customer_id, status, region, created_at);
