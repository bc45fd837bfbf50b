-- expect: setting-not-nullable-field
-- pg-version: 12
-- email_not_null is the check of column email; column mail is not proven NOT NULL.
ALTER TABLE contacts VALIDATE CONSTRAINT email_not_null;
ALTER TABLE contacts ALTER COLUMN mail SET NOT NULL;
