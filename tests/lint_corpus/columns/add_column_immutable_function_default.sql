-- expect: none
CREATE FUNCTION default_region() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'eu-west' $$;
ALTER TABLE customers ADD COLUMN region text NOT NULL DEFAULT default_region();
