-- Undo 002 add heartbeat column (the seed's rollback SQL). Dropping the column discards the
-- recorded heartbeats; they are operational data only.
DROP INDEX CONCURRENTLY IF EXISTS idx_qc_jobs_running_heartbeat;
DROP INDEX CONCURRENTLY IF EXISTS idx_qc_jobs_heartbeat;
ALTER TABLE qc_jobs DROP COLUMN IF EXISTS last_heartbeat_at;
