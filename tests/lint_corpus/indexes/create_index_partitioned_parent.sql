-- expect: require-concurrent-index, statements-after-access-exclusive
-- events is partitioned (this file adds a partition to it): a plain CREATE INDEX on it builds
-- the index on every partition while writes are blocked, and CONCURRENTLY is refused on a
-- partitioned table, so the finding gives the ON ONLY / per-partition recipe instead.
CREATE TABLE IF NOT EXISTS events_2026 PARTITION OF events
  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX IF NOT EXISTS events_created_idx ON events (created_at);
