-- expect: none
CREATE TABLE shipments (id bigint NOT NULL, carrier text NOT NULL);
ALTER TABLE shipments ALTER COLUMN carrier DROP NOT NULL;
