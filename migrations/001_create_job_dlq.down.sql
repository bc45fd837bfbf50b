-- Undo 001 create job_dlq (the seed's rollback SQL). Drops the table and every row in it:
-- export unresolved entries first if they still matter.
DROP TRIGGER IF EXISTS job_dlq_updated_at ON job_dlq;
DROP FUNCTION IF EXISTS update_job_dlq_updated_at();
DROP POLICY IF EXISTS "Users can view own org DLQ entries" ON job_dlq;
DROP POLICY IF EXISTS "Admins can manage DLQ entries" ON job_dlq;
DROP TABLE IF EXISTS job_dlq;
