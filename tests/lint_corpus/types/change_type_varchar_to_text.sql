-- expect: multiple-alter-table
-- Dropping a varchar length limit is binary-coercible: no rewrite, indexes kept.
ALTER TABLE users ALTER COLUMN display_name TYPE text;
ALTER TABLE users ALTER COLUMN email SET DATA TYPE varchar;
