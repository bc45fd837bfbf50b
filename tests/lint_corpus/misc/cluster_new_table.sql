-- expect: none
CREATE TABLE order_archive (id bigint, placed_at timestamptz);
CREATE INDEX order_archive_placed_at_idx ON order_archive (placed_at);
CLUSTER order_archive USING order_archive_placed_at_idx;
