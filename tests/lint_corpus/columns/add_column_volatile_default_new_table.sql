-- expect: none
-- The table is created in this migration: empty and invisible to others, nothing to rewrite.
CREATE TABLE sessions (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL);
ALTER TABLE sessions ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();
