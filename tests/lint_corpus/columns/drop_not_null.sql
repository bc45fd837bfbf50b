-- expect: ban-drop-not-null
-- hazards: breaks-clients
ALTER TABLE orders ALTER COLUMN shipped_at DROP NOT NULL;
