-- expect: none
-- Loaded unlogged (fast), then made durable: the table is new, empty to everyone else.
CREATE UNLOGGED TABLE IF NOT EXISTS import_batch (id bigint PRIMARY KEY, payload jsonb);
ALTER TABLE import_batch SET LOGGED;
ALTER TABLE import_batch SET TABLESPACE fast_disk;
