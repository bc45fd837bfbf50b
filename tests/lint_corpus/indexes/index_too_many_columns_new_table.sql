-- expect: index-too-many-columns
-- No lock problem on a new table, but the index design advice still applies.
CREATE TABLE shipments (id bigint, carrier text, region text, status text, shipped_at timestamptz);
CREATE INDEX shipments_lookup_idx ON shipments (carrier, region, status, shipped_at);
