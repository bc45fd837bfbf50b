-- expect: prefer-text-field
-- A table created here is empty: nothing to truncate, nothing to rewrite.
CREATE TABLE handles (id bigint, handle text);
ALTER TABLE handles ALTER COLUMN handle TYPE varchar(30) USING left(handle, 30);
