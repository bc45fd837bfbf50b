-- expect: adding-foreign-key-constraint, multiple-alter-table, statements-after-access-exclusive
-- The column was added by this migration and holds only NULLs, but orders is an existing table:
-- the foreign key is still checked by scanning every row of it (verified with pg_stat_user_tables
-- on PostgreSQL 15). Add it NOT VALID.
ALTER TABLE orders ADD COLUMN coupon_id bigint;
ALTER TABLE orders ADD CONSTRAINT orders_coupon_fk FOREIGN KEY (coupon_id) REFERENCES coupons (id);
