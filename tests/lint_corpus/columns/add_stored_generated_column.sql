-- expect: adding-stored-generated-column
-- hazards: rewrites-table, blocks-reads
ALTER TABLE order_lines ADD COLUMN total numeric GENERATED ALWAYS AS (quantity * unit_price) STORED;
