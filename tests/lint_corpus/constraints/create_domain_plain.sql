-- expect: none
CREATE DOMAIN email_address AS text;
