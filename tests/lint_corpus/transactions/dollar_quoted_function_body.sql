-- expect: none
-- Transaction control and DDL inside a dollar-quoted body are not statements of this file.
CREATE OR REPLACE FUNCTION archive_orders() RETURNS void LANGUAGE plpgsql AS $body$
BEGIN
  DELETE FROM orders;
  UPDATE orders SET note = 'x', note = 'y';
  EXECUTE 'VACUUM FULL orders';
  EXECUTE 'BEGIN; COMMIT';
  EXECUTE 'ALTER TABLE orders ADD COLUMN a text; ALTER TABLE orders ADD COLUMN b text';
END
$body$;
