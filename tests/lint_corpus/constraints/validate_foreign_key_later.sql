-- expect: none
-- The second migration of the NOT VALID recipe: VALIDATE alone takes SHARE UPDATE EXCLUSIVE.
ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk;
