-- expect: none
-- A new table has no rows to check; the referenced table is locked against writes only briefly.
CREATE TABLE order_refunds (
    id bigint PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders (id),
    amount numeric NOT NULL
);
