-- expect: none
-- pg-version: 12
-- A check named <column>_nn, added NOT VALID by the previous migration and validated here.
ALTER TABLE contacts VALIDATE CONSTRAINT email_nn;
ALTER TABLE contacts ALTER COLUMN email SET NOT NULL;
