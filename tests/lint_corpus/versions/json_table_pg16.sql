-- JSON_TABLE is PostgreSQL 17 syntax; the target runs 16.
-- expect: requires-newer-postgres
-- pg-version: 16
SET lock_timeout = '2s';
CREATE TABLE events (id bigint PRIMARY KEY, body jsonb NOT NULL);
CREATE TABLE event_tags (event_id bigint, tag text);
INSERT INTO event_tags
SELECT e.id, jt.tag FROM events e,
  JSON_TABLE(e.body, '$.tags[*]' COLUMNS (tag text PATH '$')) jt;
