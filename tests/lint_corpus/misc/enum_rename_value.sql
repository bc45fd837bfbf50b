-- expect: none
-- RENAME VALUE keeps the value's place and PostgreSQL lets it be used at once (verified on 15).
ALTER TYPE order_status RENAME VALUE 'shipped' TO 'dispatched';
UPDATE order_counts SET n = 0 WHERE status = 'dispatched'::order_status;
