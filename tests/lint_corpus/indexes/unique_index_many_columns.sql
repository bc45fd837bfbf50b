-- expect: none
-- Unique indexes enforce a rule: their column count is not a performance choice.
CREATE UNIQUE INDEX CONCURRENTLY orders_natural_key ON orders (tenant_id, customer_id, region, ref);
