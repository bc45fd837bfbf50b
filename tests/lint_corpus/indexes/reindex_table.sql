-- expect: ban-reindex
-- hazards: blocks-reads, blocks-writes
REINDEX TABLE orders;
