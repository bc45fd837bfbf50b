-- expect: ban-truncate
-- hazards: deletes-data
TRUNCATE accounts CASCADE;
