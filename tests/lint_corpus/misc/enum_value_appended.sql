-- expect: require-enum-value-ordering
-- hazards: breaks-clients
-- 'refunded' sorts after 'delivered': WHERE status < 'delivered' no longer means "in flight".
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded';
