-- expect: none
-- After the ALTER only objects this file creates are touched: nothing waits, nothing is slow.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
CREATE TABLE order_notes (order_id bigint, body text);
CREATE INDEX order_notes_order_id_idx ON order_notes (order_id);
INSERT INTO order_notes (order_id, body) VALUES (0, 'created by migration 042');
