-- expect: none
-- A column added earlier in the same migration holds no data anyone relies on.
ALTER TABLE users ADD COLUMN import_batch text;
ALTER TABLE users DROP COLUMN import_batch;
