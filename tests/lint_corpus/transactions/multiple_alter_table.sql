-- expect: multiple-alter-table
ALTER TABLE orders ADD COLUMN IF NOT EXISTS region text;
ALTER TABLE orders ALTER COLUMN region SET DEFAULT 'eu';
