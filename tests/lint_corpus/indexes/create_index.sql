-- expect: require-concurrent-index
-- hazards: blocks-writes
CREATE INDEX orders_customer_idx ON orders (customer_id);
