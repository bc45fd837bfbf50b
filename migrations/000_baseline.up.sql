-- 000 baseline: the job queue (qc_jobs), organisation membership, and the Supabase-style
-- roles and auth helpers that the row-level security policies in 001 rely on.
-- On a real Supabase project the roles and the auth schema already exist: start from 001.

-- Roles are cluster-global, not per database: create them only if missing, so this migration
-- works on a cluster where another database already made them. service_role mirrors
-- Supabase's (bypasses RLS, used by the backend); authenticated is the end-user role.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
    CREATE ROLE service_role NOLOGIN BYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
END
$$;

-- Request identity comes from the JWT claims the API gateway puts into the session setting
-- request.jwt.claims (PostgREST/Supabase convention). Missing or empty claims give NULL, so
-- policies built on these functions match nothing rather than everything.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '')::uuid
$$;

CREATE OR REPLACE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role', '')
$$;

CREATE OR REPLACE FUNCTION auth.org_id() RETURNS uuid
LANGUAGE sql STABLE
AS $$
  SELECT nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'org_id', '')::uuid
$$;

GRANT USAGE ON SCHEMA auth TO authenticated, service_role;

CREATE TABLE IF NOT EXISTS qc_jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL,
  job_type text NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CONSTRAINT qc_jobs_status_check
    CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  result jsonb,
  error_message text,
  attempts integer NOT NULL DEFAULT 0 CONSTRAINT qc_jobs_attempts_check CHECK (attempts >= 0),
  max_attempts integer NOT NULL DEFAULT 3,
  scheduled_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_qc_jobs_org_status ON qc_jobs (org_id, status);
CREATE INDEX IF NOT EXISTS idx_qc_jobs_pending ON qc_jobs (scheduled_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS org_members (
  org_id uuid NOT NULL,
  user_id uuid NOT NULL,
  role text NOT NULL DEFAULT 'member'
    CONSTRAINT org_members_role_check CHECK (role IN ('owner', 'admin', 'member')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, user_id)
);

CREATE INDEX IF NOT EXISTS idx_org_members_user_id ON org_members (user_id);

GRANT ALL ON qc_jobs, org_members TO service_role;
-- The policies in 001 look up membership as the querying user, so it must be able to read it.
GRANT SELECT ON org_members TO authenticated;
