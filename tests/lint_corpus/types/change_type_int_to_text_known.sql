-- expect: changing-column-type, prefer-bigint-over-int
-- The old type is known from this file and integer -> text is not binary-coercible: a rewrite.
ALTER TABLE users ADD COLUMN code integer;
ALTER TABLE users ALTER COLUMN code TYPE text;
