-- MERGE ... RETURNING merge_action() is PostgreSQL 17 syntax; the target runs 16.
-- expect: requires-newer-postgres
-- pg-version: 16
SET lock_timeout = '2s';
CREATE TABLE stock (sku text PRIMARY KEY, qty bigint NOT NULL);
CREATE TABLE delivery (sku text PRIMARY KEY, qty bigint NOT NULL);
MERGE INTO stock s USING delivery d ON s.sku = d.sku
WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty
WHEN NOT MATCHED THEN INSERT VALUES (d.sku, d.qty)
RETURNING merge_action(), s.sku;
