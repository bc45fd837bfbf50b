-- expect: ban-update-without-where
-- hazards: deletes-data
UPDATE users SET email = lower(email);
