-- expect: setting-not-nullable-field
-- hazards: blocks-reads
-- SET NOT NULL in the same ALTER TABLE still scans every row (NOT NULL DEFAULT 'web' in the
-- column definition would not).
ALTER TABLE orders ADD COLUMN channel text DEFAULT 'web', ALTER COLUMN channel SET NOT NULL;
