-- expect: changing-column-type, ban-narrowing-column-type
-- hazards: deletes-data
-- USING that never reads the column replaces every value.
ALTER TABLE users ALTER COLUMN preferences TYPE jsonb USING '{}'::jsonb;
