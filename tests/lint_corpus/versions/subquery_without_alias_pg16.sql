-- The same statement on PostgreSQL 16: valid.
-- expect: none
-- pg-version: 16
SET lock_timeout = '2s';
CREATE TABLE settings (k text PRIMARY KEY, v text);
INSERT INTO settings SELECT * FROM (SELECT 'mode', 'fast');
