-- expect: ban-enum-value-used-in-same-transaction
-- The new table's column is of the enum type: its default uses the uncommitted value.
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'packed' AFTER 'paid';
CREATE TABLE IF NOT EXISTS shipments (id bigint PRIMARY KEY, status order_status NOT NULL DEFAULT 'packed');
