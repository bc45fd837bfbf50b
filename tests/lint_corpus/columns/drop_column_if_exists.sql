-- expect: ban-drop-column
-- hazards: deletes-data
-- IF EXISTS makes the statement re-runnable; the data is gone all the same.
ALTER TABLE IF EXISTS users DROP COLUMN IF EXISTS legacy_password_hash;
