-- expect: renaming-table
-- hazards: breaks-clients
ALTER TABLE IF EXISTS customers RENAME TO clients;
