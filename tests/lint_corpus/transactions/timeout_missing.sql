-- expect: require-timeout-settings
-- hazards: missing-timeout, blocks-reads
-- enable: require-timeout-settings
-- Another runner applies this file: nothing bounds the wait for ACCESS EXCLUSIVE on orders.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
