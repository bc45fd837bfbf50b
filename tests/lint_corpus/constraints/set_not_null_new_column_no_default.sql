-- expect: multiple-alter-table, setting-not-nullable-field
-- hazards: may-fail-on-data, blocks-reads
-- ERROR: column "region" of relation "customers" contains null values (unless it is empty).
ALTER TABLE customers ADD COLUMN region bigint;
ALTER TABLE customers ALTER COLUMN region SET NOT NULL;
