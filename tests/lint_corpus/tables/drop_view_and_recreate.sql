-- expect: none
-- DROP + CREATE in one transaction to change the view's columns: clients wait on the lock, then
-- see the new view; they never find it missing.
DROP VIEW IF EXISTS active_customers;
CREATE VIEW active_customers AS SELECT id, email, region FROM customers WHERE active;
