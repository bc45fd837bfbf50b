-- expect: none
-- DDL-looking text inside a dollar-quoted body is not a statement of this migration.
CREATE FUNCTION purge() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'DROP TABLE old_stuff';
  -- TRUNCATE accounts;
END
$$;
