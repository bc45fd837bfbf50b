-- expect: none
-- A domain without constraints is just its base type: no rewrite.
CREATE DOMAIN email_address AS text;
ALTER TABLE customers ADD COLUMN IF NOT EXISTS billing_email email_address;
