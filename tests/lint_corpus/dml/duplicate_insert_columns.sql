-- expect: ban-duplicate-column-assignments
INSERT INTO settings (key, value, key) VALUES ('theme', 'dark', 'mode');
