-- expect: none
CREATE TABLE order_notes (order_id bigint, body text);
ALTER TABLE order_notes ADD COLUMN author text;
INSERT INTO order_notes (order_id, body, author) SELECT id, note, 'migration' FROM orders;
