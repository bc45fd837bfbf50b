-- expect: ban-rewriting-alter-table
ALTER TABLE ALL IN TABLESPACE fast_disk SET TABLESPACE slow_disk;
