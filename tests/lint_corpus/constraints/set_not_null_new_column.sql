-- expect: multiple-alter-table, setting-not-nullable-field
-- hazards: blocks-reads
-- channel is new and filled by its default, yet SET NOT NULL scans every row of the existing
-- table under ACCESS EXCLUSIVE (ADD COLUMN channel text NOT NULL DEFAULT 'web' would not).
ALTER TABLE orders ADD COLUMN channel text DEFAULT 'web';
ALTER TABLE orders ALTER COLUMN channel SET NOT NULL;
