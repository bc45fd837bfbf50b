-- expect: changing-column-type
-- hazards: rewrites-table
-- The old type is not in this file, so pgsafe cannot prove the change binary-coercible: from
-- integer (as here, in the previous migration) to text rewrites the whole table (verified with
-- pg_relation_filenode on PostgreSQL 15).
ALTER TABLE invoices ALTER COLUMN number TYPE text;
