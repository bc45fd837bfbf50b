-- expect: none
-- enable: require-timeout-settings
-- Only a table created in this file is locked: nobody else can be waiting on it.
CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, total numeric);
ALTER TABLE invoices ADD COLUMN note text;
CREATE INDEX invoices_total_idx ON invoices (total);
