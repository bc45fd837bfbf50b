-- WHEN NOT MATCHED BY SOURCE is PostgreSQL 17 syntax (MERGE itself is 15); the target runs 15.
-- expect: requires-newer-postgres
-- pg-version: 15
SET lock_timeout = '2s';
CREATE TABLE stock (sku text PRIMARY KEY, qty bigint NOT NULL);
CREATE TABLE counted (sku text PRIMARY KEY, qty bigint NOT NULL);
MERGE INTO stock s USING counted c ON s.sku = c.sku
WHEN MATCHED THEN UPDATE SET qty = c.qty
WHEN NOT MATCHED BY SOURCE THEN DELETE;
