-- expect: adding-field-with-default, ban-create-domain-with-constraint
-- hazards: rewrites-table
-- A column of a domain with a CHECK is checked against it by rewriting every row, with no
-- default and even though the domain is new (verified with pg_relation_filenode on PostgreSQL 15).
CREATE DOMAIN positive_amount AS numeric CHECK (VALUE > 0);
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS total positive_amount;
