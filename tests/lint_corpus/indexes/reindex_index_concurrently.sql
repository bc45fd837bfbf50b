-- expect: none
REINDEX INDEX CONCURRENTLY orders_customer_idx;
