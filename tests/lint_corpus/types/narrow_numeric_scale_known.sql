-- expect: changing-column-type, ban-narrowing-column-type
-- hazards: deletes-data
-- numeric(12,4) -> numeric(12,2) rounds every value silently.
ALTER TABLE prices ALTER COLUMN amount TYPE numeric(12, 4);
ALTER TABLE prices ALTER COLUMN amount TYPE numeric(12, 2);
