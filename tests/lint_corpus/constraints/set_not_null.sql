-- expect: setting-not-nullable-field
-- hazards: blocks-reads, blocks-writes, may-fail-on-data
ALTER TABLE orders ALTER COLUMN customer_id SET NOT NULL;
