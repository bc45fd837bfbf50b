-- expect: setting-not-nullable-field
-- The validated constraint says nothing about customer_id.
ALTER TABLE orders VALIDATE CONSTRAINT orders_total_positive;
ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;
