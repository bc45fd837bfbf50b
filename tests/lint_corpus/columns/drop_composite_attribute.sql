-- expect: ban-drop-attribute
-- hazards: deletes-data
-- Not a table column: the attribute's values vanish from every stored value of the type
-- (verified on PostgreSQL 15), with no lock on the tables that hold them.
ALTER TYPE postal_address DROP ATTRIBUTE IF EXISTS region;
