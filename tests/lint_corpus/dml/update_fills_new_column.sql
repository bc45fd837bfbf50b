-- expect: statements-after-access-exclusive
-- Filling a column added in this file overwrites nothing (no ban-update-without-where), but
-- it runs under ADD COLUMN's ACCESS EXCLUSIVE lock.
ALTER TABLE users ADD COLUMN IF NOT EXISTS locale text;
UPDATE users SET locale = 'en';
