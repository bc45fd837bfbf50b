-- expect: prefer-bigint-over-int
-- A nullable column without a default is safe to add; the type is the only complaint.
ALTER TABLE products ADD COLUMN stock_count int;
