-- expect: changing-column-type, ban-narrowing-column-type, prefer-bigint-over-int
-- hazards: may-fail-on-data
ALTER TABLE metrics ALTER COLUMN hits TYPE bigint;
ALTER TABLE metrics ALTER COLUMN hits TYPE integer;
