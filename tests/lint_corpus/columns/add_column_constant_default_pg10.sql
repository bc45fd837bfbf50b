-- expect: adding-field-with-default
-- hazards: rewrites-table
-- pg-version: 10
-- Before PostgreSQL 11 even a constant default is written into every row.
ALTER TABLE users ADD COLUMN status text NOT NULL DEFAULT 'active';
