-- expect: ban-concurrent-index-creation-in-transaction
BEGIN;
DROP INDEX CONCURRENTLY orders_legacy_idx;
COMMIT;
