-- expect: none
-- pg-version: 10
-- DEFAULT NULL is no default at all: no rewrite, on any version.
ALTER TABLE users ADD COLUMN nickname text DEFAULT NULL;
