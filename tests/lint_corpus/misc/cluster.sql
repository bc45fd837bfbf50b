-- expect: ban-cluster
-- hazards: rewrites-table, blocks-reads
CLUSTER orders USING orders_placed_at_idx;
