-- expect: none
-- pgsafe apply sets lock_timeout and statement_timeout itself: the rule is opt-in.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;
