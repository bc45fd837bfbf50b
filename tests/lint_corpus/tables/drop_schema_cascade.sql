-- expect: ban-drop-schema
-- hazards: deletes-data
-- CASCADE drops every table in the schema with its rows (verified on PostgreSQL 15: ACCESS
-- EXCLUSIVE on each of them).
DROP SCHEMA IF EXISTS reporting CASCADE;
