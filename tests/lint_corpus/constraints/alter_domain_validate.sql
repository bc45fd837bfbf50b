-- expect: ban-alter-domain-with-add-constraint
-- Unlike VALIDATE on a table, VALIDATE on a domain locks every table using it against writes.
ALTER DOMAIN email_address VALIDATE CONSTRAINT email_has_at;
