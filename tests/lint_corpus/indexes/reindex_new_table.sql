-- expect: none
CREATE TABLE staging_rows (id bigint, payload text);
REINDEX TABLE staging_rows;
