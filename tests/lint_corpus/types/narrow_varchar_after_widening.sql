-- expect: changing-column-type, ban-narrowing-column-type, prefer-text-field
-- hazards: may-fail-on-data
-- The first statement sets the type pgsafe then knows; the second shrinks it again.
ALTER TABLE users ALTER COLUMN username TYPE varchar(100);
ALTER TABLE users ALTER COLUMN username TYPE varchar(30);
