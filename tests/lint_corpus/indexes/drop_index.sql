-- expect: require-concurrent-index-deletion
-- hazards: blocks-reads, blocks-writes
DROP INDEX orders_legacy_idx;
