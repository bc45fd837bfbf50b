-- expect: changing-column-type, multiple-alter-table
-- hazards: rewrites-table
-- Dropping a varchar length limit is binary-coercible, but this file does not show the old
-- types: from int, numeric or date the same ALTER rewrites the table, so it is reported.
ALTER TABLE users ALTER COLUMN display_name TYPE text;
ALTER TABLE users ALTER COLUMN email SET DATA TYPE varchar;
