-- expect: changing-column-type
-- hazards: rewrites-table
-- CASCADE also changes the column of every typed table (CREATE TABLE ... OF address): each is
-- rewritten under ACCESS EXCLUSIVE (verified with pg_relation_filenode on PostgreSQL 15).
ALTER TYPE address ALTER ATTRIBUTE zip TYPE bigint CASCADE;
