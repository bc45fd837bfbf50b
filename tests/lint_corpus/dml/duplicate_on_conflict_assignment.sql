-- expect: ban-duplicate-column-assignments
INSERT INTO settings (key, value) VALUES ('theme', 'dark')
ON CONFLICT (key) DO UPDATE SET value = excluded.value, value = 'light';
