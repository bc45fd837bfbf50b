-- expect: ban-delete-without-where
-- hazards: deletes-data
-- EXPLAIN ANALYZE runs the statement: every row is deleted.
EXPLAIN (ANALYZE, BUFFERS) DELETE FROM sessions;
