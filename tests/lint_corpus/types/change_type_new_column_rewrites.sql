-- expect: changing-column-type
-- The column is new, but ALTER COLUMN TYPE still rewrites every existing row of the table.
ALTER TABLE page_views ADD COLUMN score bigint;
ALTER TABLE page_views ALTER COLUMN score TYPE numeric;
