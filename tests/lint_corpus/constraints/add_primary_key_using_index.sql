-- expect: none
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS events_pkey_idx ON events (id);
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_pkey_idx;
