-- expect: none
-- A composite type's attribute: without CASCADE this changes the type only (PostgreSQL refuses
-- it if a table uses the type), no table is rewritten.
ALTER TYPE address ALTER ATTRIBUTE zip TYPE text;
