-- 001 create job_dlq: a dead-letter queue for jobs that exhausted their retries, kept for
-- manual review or a later retry. Additive only: a new table and objects that hang off it.
-- Feature flag: DLQ_ENABLED.

-- original_job_id is deliberately not a foreign key to qc_jobs: finished jobs get purged, and
-- the dead-letter entry must outlive them.
CREATE TABLE IF NOT EXISTS job_dlq (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  original_job_id uuid NOT NULL,
  org_id uuid NOT NULL,
  job_type text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  error_message text,
  error_stack text,
  attempt_count integer NOT NULL DEFAULT 0
    CONSTRAINT job_dlq_attempt_count_check CHECK (attempt_count >= 0),
  failed_at timestamptz NOT NULL DEFAULT now(),
  retry_after timestamptz,
  resolved_at timestamptz,
  resolved_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The table is new and empty, so plain CREATE INDEX takes no lock anyone else is waiting on.
CREATE INDEX IF NOT EXISTS idx_job_dlq_org_id ON job_dlq (org_id);
CREATE INDEX IF NOT EXISTS idx_job_dlq_original_job_id ON job_dlq (original_job_id);
CREATE INDEX IF NOT EXISTS idx_job_dlq_job_type ON job_dlq (job_type);
CREATE INDEX IF NOT EXISTS idx_job_dlq_failed_at ON job_dlq (failed_at DESC);
CREATE INDEX IF NOT EXISTS idx_job_dlq_unresolved
  ON job_dlq (org_id, failed_at DESC) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_job_dlq_retry_after
  ON job_dlq (retry_after) WHERE resolved_at IS NULL AND retry_after IS NOT NULL;

CREATE OR REPLACE FUNCTION update_job_dlq_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER job_dlq_updated_at
  BEFORE UPDATE ON job_dlq
  FOR EACH ROW EXECUTE FUNCTION update_job_dlq_updated_at();

ALTER TABLE job_dlq ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Users can view own org DLQ entries" ON job_dlq
  FOR SELECT TO authenticated
  USING (org_id IN (SELECT m.org_id FROM org_members m WHERE m.user_id = auth.uid()));

CREATE POLICY "Admins can manage DLQ entries" ON job_dlq
  FOR ALL TO authenticated
  USING (EXISTS (
    SELECT 1 FROM org_members m
    WHERE m.org_id = job_dlq.org_id AND m.user_id = auth.uid() AND m.role IN ('owner', 'admin')
  ))
  WITH CHECK (EXISTS (
    SELECT 1 FROM org_members m
    WHERE m.org_id = job_dlq.org_id AND m.user_id = auth.uid() AND m.role IN ('owner', 'admin')
  ));

GRANT ALL ON job_dlq TO service_role;
-- Row access for end users is decided by the policies above; without table privileges they
-- would never be consulted.
GRANT SELECT, INSERT, UPDATE, DELETE ON job_dlq TO authenticated;
