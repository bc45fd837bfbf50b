-- expect: none
ALTER TABLE invoices ADD COLUMN amount numeric(10, 2);
ALTER TABLE invoices ALTER COLUMN amount TYPE numeric(14, 2);
ALTER TABLE invoices ALTER COLUMN amount TYPE numeric;
