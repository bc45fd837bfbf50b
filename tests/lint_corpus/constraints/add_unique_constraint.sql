-- expect: disallowed-unique-constraint
-- hazards: blocks-reads, may-fail-on-data
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
