-- expect: none
-- Exactly 63 bytes: kept as written.
CREATE TABLE IF NOT EXISTS customer_lifetime_value_snapshots_by_region_and_quarter_v2_xxxx (
  id bigint
);
