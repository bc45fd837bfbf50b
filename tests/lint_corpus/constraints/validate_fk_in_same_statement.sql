-- expect: ban-validate-in-same-transaction
-- hazards: blocks-writes
ALTER TABLE orders
  ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID,
  VALIDATE CONSTRAINT orders_customer_fk;
