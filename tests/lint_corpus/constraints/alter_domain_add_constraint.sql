-- expect: ban-alter-domain-with-add-constraint
-- hazards: blocks-writes, may-fail-on-data
ALTER DOMAIN email_address ADD CONSTRAINT email_has_at CHECK (VALUE LIKE '%@%');
