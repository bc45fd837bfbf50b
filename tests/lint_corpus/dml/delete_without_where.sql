-- expect: ban-delete-without-where
-- hazards: deletes-data
DELETE FROM sessions;
