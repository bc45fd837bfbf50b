-- expect: none
-- One BEGIN ... COMMIT around the whole file: pgsafe drops it and wraps the file itself.
BEGIN;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
END;
