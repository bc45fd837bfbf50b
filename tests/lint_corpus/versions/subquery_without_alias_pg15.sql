-- A subquery in FROM without an alias parses from PostgreSQL 16 on; the target runs 15.
-- expect: requires-newer-postgres
-- pg-version: 15
SET lock_timeout = '2s';
CREATE TABLE settings (k text PRIMARY KEY, v text);
INSERT INTO settings SELECT * FROM (SELECT 'mode', 'fast');
