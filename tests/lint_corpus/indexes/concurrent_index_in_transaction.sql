-- expect: ban-concurrent-index-creation-in-transaction
-- hazards: not-transactional
BEGIN;
CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);
COMMIT;
