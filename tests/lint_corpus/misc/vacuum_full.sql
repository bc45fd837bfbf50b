-- expect: ban-vacuum-full
-- hazards: rewrites-table, blocks-reads, blocks-writes, not-transactional
VACUUM (FULL, ANALYZE) orders;
