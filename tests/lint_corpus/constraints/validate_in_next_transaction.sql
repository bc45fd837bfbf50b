-- expect: transaction-nesting, prefer-robust-stmts
-- The file commits the ADD before it validates: two transactions, as the recipe says.
BEGIN;
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk
    FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID;
COMMIT;
BEGIN;
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk;
COMMIT;
