-- expect: adding-field-with-default
-- hazards: rewrites-table
-- An identity column numbers every existing row from its sequence: a rewrite.
ALTER TABLE audit_log ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
