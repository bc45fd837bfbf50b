-- expect: ban-drop-table
-- hazards: deletes-data, breaks-clients, blocks-reads
DROP TABLE legacy_orders;
