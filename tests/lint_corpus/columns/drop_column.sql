-- expect: ban-drop-column
-- hazards: deletes-data, breaks-clients
ALTER TABLE users DROP COLUMN legacy_password_hash;
