-- expect: multiple-alter-table
ALTER TABLE orders ADD COLUMN channel text DEFAULT 'web';
ALTER TABLE orders ALTER COLUMN channel SET NOT NULL;
