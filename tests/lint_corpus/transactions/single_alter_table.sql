-- expect: none
ALTER TABLE orders ADD COLUMN IF NOT EXISTS region text, ALTER COLUMN region SET DEFAULT 'eu';
