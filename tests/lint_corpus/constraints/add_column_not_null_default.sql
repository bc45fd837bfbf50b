-- expect: none
-- NOT NULL with a constant default in ADD COLUMN: no rewrite and no scan on PostgreSQL 11+.
ALTER TABLE orders ADD COLUMN channel text NOT NULL DEFAULT 'web';
