-- expect: ban-rewriting-alter-table
-- hazards: rewrites-table, blocks-reads
-- SET LOGGED writes the whole table into new files (and the WAL) under ACCESS EXCLUSIVE
-- (verified with pg_relation_filenode on PostgreSQL 15).
ALTER TABLE import_staging SET LOGGED;
