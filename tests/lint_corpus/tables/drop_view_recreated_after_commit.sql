-- expect: ban-drop-view, transaction-nesting
-- The view is created again only after the COMMIT: in between, clients find it missing.
BEGIN;
DROP VIEW IF EXISTS active_customers;
COMMIT;
CREATE VIEW active_customers AS SELECT id, email FROM customers WHERE active;
