-- expect: prefer-text-field
-- varchar(20) -> varchar(50) is binary-coercible: no rewrite (the old type is known from this file).
ALTER TABLE users ADD COLUMN nickname varchar(20);
ALTER TABLE users ALTER COLUMN nickname TYPE varchar(50);
