-- expect: changing-column-type
-- hazards: rewrites-table, blocks-reads, blocks-writes
ALTER TABLE orders ALTER COLUMN id TYPE bigint;
