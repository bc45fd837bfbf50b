-- expect: none
-- Only DROP NOT NULL is this rule's business; DROP DEFAULT changes nothing readers see.
ALTER TABLE orders ALTER COLUMN shipped_at DROP DEFAULT;
