-- expect: setting-not-nullable-field
-- pg-version: 11
-- Before PostgreSQL 12, SET NOT NULL scans the table even with a validated CHECK.
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_not_null;
ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE orders DROP CONSTRAINT orders_customer_id_not_null;
