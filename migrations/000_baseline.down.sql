-- Undo 000 baseline. Dropping the tables also drops their indexes and grants; dropping the
-- functions and the schema removes the USAGE grants on it.
--
-- The roles service_role and authenticated are deliberately NOT dropped: roles are
-- cluster-global, so other databases on the same server may own objects or hold grants through
-- them (DROP ROLE would fail there, or break them), and a role cannot be told apart from one
-- this migration did not create. They own nothing in this database once the objects are gone.
DROP TABLE IF EXISTS org_members;
DROP TABLE IF EXISTS qc_jobs;
DROP FUNCTION IF EXISTS auth.org_id();
DROP FUNCTION IF EXISTS auth.role();
DROP FUNCTION IF EXISTS auth.uid();
DROP SCHEMA IF EXISTS auth;
