-- expect: renaming-column
-- hazards: breaks-clients
ALTER TABLE users RENAME COLUMN email TO email_address;
