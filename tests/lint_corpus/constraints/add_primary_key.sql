-- expect: adding-serial-primary-key-field
-- hazards: blocks-reads, blocks-writes, may-fail-on-data
ALTER TABLE events ADD PRIMARY KEY (id);
