-- expect: none
-- The index and its table are both created by this file: nobody else can see them yet.
CREATE TABLE import_batches (id bigint, source text);
CREATE INDEX import_batches_source_idx ON import_batches (source);
DROP INDEX import_batches_source_idx;
