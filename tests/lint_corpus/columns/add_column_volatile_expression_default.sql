-- expect: adding-field-with-default
-- The volatile call is buried in an expression and a cast.
ALTER TABLE experiments ADD COLUMN bucket bigint DEFAULT (floor(random() * 100))::bigint;
