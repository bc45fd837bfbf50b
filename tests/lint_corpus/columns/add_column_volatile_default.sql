-- expect: adding-field-with-default
-- hazards: rewrites-table, blocks-reads, blocks-writes
-- gen_random_uuid() is VOLATILE: every existing row gets its own value, so the table is rewritten.
ALTER TABLE users ADD COLUMN api_token uuid DEFAULT gen_random_uuid();
