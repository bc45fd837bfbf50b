-- expect: none
CREATE TABLE staging_rows (id bigint, payload text, scratch text);
ALTER TABLE staging_rows DROP COLUMN scratch;
