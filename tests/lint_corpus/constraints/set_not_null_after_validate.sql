-- expect: none
-- pg-version: 12
-- Second migration of the recipe: the CHECK was added NOT VALID by the previous migration.
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_id_not_null;
ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;
ALTER TABLE orders DROP CONSTRAINT orders_customer_id_not_null;
