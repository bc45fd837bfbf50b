-- expect: adding-foreign-key-constraint
-- hazards: blocks-writes, may-fail-on-data
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk
    FOREIGN KEY (customer_id) REFERENCES customers (id);
