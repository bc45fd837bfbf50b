-- expect: adding-required-field, ban-create-domain-with-constraint
-- hazards: may-fail-on-data
-- ERROR: domain currency_code does not allow null values (unless the table is empty).
CREATE DOMAIN currency_code AS text NOT NULL;
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS currency currency_code;
