-- 002 add heartbeat column: workers stamp qc_jobs.last_heartbeat_at while a job runs, so a
-- watchdog can find jobs whose worker died. Feature flag: JOB_HEARTBEAT.

-- A nullable column without a default is a catalog-only change: a brief ACCESS EXCLUSIVE
-- lock, no table rewrite.
ALTER TABLE qc_jobs ADD COLUMN IF NOT EXISTS last_heartbeat_at TIMESTAMP WITH TIME ZONE;

-- The seed built these indexes with a plain CREATE INDEX, which blocks every write to qc_jobs
-- for the whole build (pgsafe lint: require-concurrent-index). CONCURRENTLY does not; pgsafe
-- runs these two as autocommit steps and drops an INVALID index left by a failed build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_qc_jobs_heartbeat ON qc_jobs (last_heartbeat_at);

-- The watchdog's query: running jobs ordered by their last heartbeat.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_qc_jobs_running_heartbeat
  ON qc_jobs (last_heartbeat_at) WHERE status = 'running';

COMMENT ON COLUMN qc_jobs.last_heartbeat_at IS
  'Last time the worker running this job reported progress; NULL until the job starts.';
