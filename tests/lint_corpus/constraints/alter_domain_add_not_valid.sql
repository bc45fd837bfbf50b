-- expect: none
-- NOT VALID: no scan, only new values are checked.
ALTER DOMAIN email_address ADD CONSTRAINT email_has_at CHECK (VALUE LIKE '%@%') NOT VALID;
