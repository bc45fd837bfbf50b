-- expect: none
-- pg-version: 13
-- DETACH ... CONCURRENTLY only exists from PostgreSQL 14: nothing better to recommend on 13.
ALTER TABLE measurements DETACH PARTITION measurements_2019;
