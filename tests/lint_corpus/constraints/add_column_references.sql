-- expect: adding-foreign-key-constraint
-- hazards: blocks-reads, blocks-writes
ALTER TABLE orders ADD COLUMN warehouse_id bigint REFERENCES warehouses (id);
