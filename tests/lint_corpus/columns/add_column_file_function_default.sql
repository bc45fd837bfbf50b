-- expect: adding-field-with-default
-- A function without a volatility marker is VOLATILE, so its default fills rows one by one.
CREATE FUNCTION new_coupon_code() RETURNS text LANGUAGE sql AS $$ SELECT md5(random()::text) $$;
ALTER TABLE coupons ADD COLUMN code text DEFAULT new_coupon_code();
