-- expect: none
CREATE TABLE invoices (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);
ALTER TABLE invoices ADD COLUMN customer_id bigint NOT NULL;
