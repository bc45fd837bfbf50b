-- expect: none
-- The text of a DO block is a string to the parser: nothing in it is a statement of this file.
DO $migrate$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_type WHERE typname = 'order_status') THEN
    CREATE TYPE order_status AS ENUM ('new', 'paid');
  END IF;
  ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'shipped';
  PERFORM 'shipped'::order_status;
  CLUSTER orders;
  COMMIT;
  CREATE TABLE table_very_long_very_long_very_long_very_long_very_long_very_long (id bigint);
END
$migrate$;
