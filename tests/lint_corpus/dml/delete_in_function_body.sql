-- expect: none
-- A function body is stored, not run: nothing is deleted by this migration.
CREATE OR REPLACE FUNCTION purge_sessions() RETURNS void LANGUAGE sql
BEGIN ATOMIC
  DELETE FROM sessions;
  UPDATE users SET last_seen_at = NULL;
END;
