-- expect: none
-- The same word in a text column is not the enum value: PostgreSQL accepts it.
ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'new' BEFORE 'queued';
INSERT INTO audit_log (msg) VALUES ('new');
CREATE TABLE IF NOT EXISTS notes (id bigint PRIMARY KEY, body text DEFAULT 'new');
