-- expect: disallowed-unique-constraint
-- The new column is empty, but the unique index is still built over every row, under ACCESS EXCLUSIVE.
ALTER TABLE users ADD COLUMN external_ref text UNIQUE;
