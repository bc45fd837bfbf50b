-- expect: multiple-alter-table, statements-after-access-exclusive
-- The column was added by this migration: it holds only NULLs, nothing to check.
ALTER TABLE orders ADD COLUMN coupon_id bigint;
ALTER TABLE orders ADD CONSTRAINT orders_coupon_fk FOREIGN KEY (coupon_id) REFERENCES coupons (id);
