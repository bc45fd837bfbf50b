-- expect: none
-- Assigning different elements of one array column is allowed.
UPDATE reports SET totals[1] = 0, totals[2] = 0 WHERE id = 7;
INSERT INTO settings (key, value) VALUES ('theme', 'dark') ON CONFLICT (key) DO NOTHING;
