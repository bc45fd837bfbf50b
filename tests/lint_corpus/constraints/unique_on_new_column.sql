-- expect: disallowed-unique-constraint, multiple-alter-table
-- hazards: blocks-reads
-- external_ref is new and all NULL, but users is not: the unique index is built over every
-- existing row under ACCESS EXCLUSIVE.
ALTER TABLE users ADD COLUMN external_ref text;
ALTER TABLE users ADD CONSTRAINT users_external_ref_key UNIQUE (external_ref);
