-- expect: prefer-text-field
-- varchar(200) -> text is binary-coercible and the old type is known from this file: no rewrite.
ALTER TABLE users ADD COLUMN bio varchar(200);
ALTER TABLE users ALTER COLUMN bio TYPE text;
