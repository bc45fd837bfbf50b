-- expect: ban-drop-view
-- hazards: deletes-data, breaks-clients
DROP MATERIALIZED VIEW IF EXISTS monthly_revenue;
