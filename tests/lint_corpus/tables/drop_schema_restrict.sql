-- expect: none
-- Without CASCADE PostgreSQL drops only an empty schema: it refuses if anything is in it.
DROP SCHEMA IF EXISTS reporting;
