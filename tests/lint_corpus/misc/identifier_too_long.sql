-- expect: identifier-too-long
-- hazards: breaks-clients
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_id_placed_at_status_region_shipping_country_covering_idx
  ON orders (customer_id, placed_at);
