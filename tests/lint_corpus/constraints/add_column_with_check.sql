-- expect: constraint-missing-not-valid
-- An inline CHECK cannot be NOT VALID: this statement checks every row under ACCESS EXCLUSIVE.
ALTER TABLE accounts ADD COLUMN credit_limit numeric DEFAULT 0 CHECK (credit_limit >= 0);
