-- expect: changing-column-type
-- Without a UTC session time zone the conversion rewrites the table.
ALTER TABLE events ALTER COLUMN occurred_at TYPE timestamptz;
