-- expect: none
-- ON ONLY a partitioned table builds nothing: it records an invalid index on the parent only
-- (a catalog change), then each partition's index is built CONCURRENTLY and attached.
CREATE INDEX IF NOT EXISTS events_created_idx ON ONLY events (created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_2025_created_idx ON events_2025 (created_at);
ALTER INDEX events_created_idx ATTACH PARTITION events_2025_created_idx;
