-- expect: ban-rewriting-alter-table
-- hazards: rewrites-table, blocks-writes
ALTER TABLE audit_log SET TABLESPACE archive_disk;
