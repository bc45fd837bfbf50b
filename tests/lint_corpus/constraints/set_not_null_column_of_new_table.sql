-- expect: none
-- The table is created in this file: empty and invisible to others, nothing to scan.
CREATE TABLE shipments (id bigint PRIMARY KEY);
ALTER TABLE shipments ADD COLUMN carrier text;
ALTER TABLE shipments ALTER COLUMN carrier SET NOT NULL;
