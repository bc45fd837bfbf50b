-- expect: ban-delete-without-where
WITH gone AS (DELETE FROM sessions RETURNING user_id)
INSERT INTO session_audit (user_id) SELECT user_id FROM gone;
