-- expect: changing-column-type
-- A conversion that reads the column destroys nothing; it is still a rewrite.
ALTER TABLE users ALTER COLUMN preferences TYPE jsonb USING preferences::jsonb;
