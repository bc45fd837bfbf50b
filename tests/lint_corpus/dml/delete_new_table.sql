-- expect: none
-- Emptying a table this file created (and filled) loses nobody's data.
CREATE TABLE import_staging (id bigint, payload text);
INSERT INTO import_staging SELECT id, payload FROM raw_import WHERE batch = 7;
DELETE FROM import_staging;
UPDATE import_staging SET payload = '';
