-- expect: transaction-nesting, prefer-robust-stmts
-- CONCURRENTLY after the file's own transaction has committed: pgsafe runs it as an autocommit step.
BEGIN;
CREATE TABLE order_notes (id bigint, order_id bigint, body text);
COMMIT;
CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);
