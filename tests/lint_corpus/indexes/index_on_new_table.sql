-- expect: none
CREATE TABLE events (id bigint, kind text);
CREATE INDEX events_kind_idx ON events (kind);
