-- expect: none
CREATE TABLE audit_log (id bigint, body text);
ALTER TABLE audit_log ADD PRIMARY KEY (id);
