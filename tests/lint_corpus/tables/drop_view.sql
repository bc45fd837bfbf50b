-- expect: ban-drop-view
-- hazards: breaks-clients
DROP VIEW IF EXISTS active_customers;
