-- expect: ban-enum-value-used-in-same-transaction
-- shipments.status is of the enum type (this file created the table): the INSERT uses the value.
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'packed' AFTER 'paid';
CREATE TABLE IF NOT EXISTS shipments (id bigint PRIMARY KEY, status order_status NOT NULL);
INSERT INTO shipments (id, status) VALUES (1, 'packed');
