-- expect: ban-drop-view
-- hazards: deletes-data
-- WITH NO DATA: until a REFRESH, reading the new materialized view fails.
DROP MATERIALIZED VIEW IF EXISTS monthly_revenue;
CREATE MATERIALIZED VIEW monthly_revenue AS
  SELECT date_trunc('month', placed_at) AS month, sum(total) AS revenue FROM orders GROUP BY 1
  WITH NO DATA;
