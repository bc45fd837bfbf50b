-- expect: changing-column-type, ban-narrowing-column-type, ban-char-field
-- hazards: deletes-data
-- An explicit ::char(n) cast silently truncates longer values.
ALTER TABLE countries ALTER COLUMN code TYPE char(2) USING code::char(2);
