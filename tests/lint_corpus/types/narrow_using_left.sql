-- expect: changing-column-type, ban-narrowing-column-type, prefer-text-field
-- hazards: deletes-data, rewrites-table
ALTER TABLE users ALTER COLUMN bio TYPE varchar(200) USING left(bio, 200);
