-- expect: none
-- pgsafe commits before the autocommit step, so the new value is usable in it; the text
-- literal 'packed'::text is not the enum value.
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'packed' AFTER 'paid';
INSERT INTO order_events (kind, note) VALUES ('status_added', 'packed'::text);
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_packed_idx ON orders (id) WHERE status = 'packed';
