-- expect: adding-serial-primary-key-field, multiple-alter-table
-- hazards: may-fail-on-data
-- The new column holds NULL in every existing row: the primary key fails unless the table is
-- empty, after building its index under ACCESS EXCLUSIVE.
ALTER TABLE events ADD COLUMN event_id bigint;
ALTER TABLE events ADD PRIMARY KEY (event_id);
