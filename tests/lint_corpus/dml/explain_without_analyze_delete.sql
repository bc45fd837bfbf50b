-- expect: none
-- EXPLAIN without ANALYZE (or with ANALYZE false) only plans the DELETE: no row is deleted.
EXPLAIN (ANALYZE false, COSTS off) DELETE FROM sessions;
EXPLAIN DELETE FROM sessions;
