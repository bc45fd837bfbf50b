-- expect: adding-required-field
-- DEFAULT NULL does not fill anything: the NOT NULL still fails on existing rows.
ALTER TABLE IF EXISTS users ADD COLUMN IF NOT EXISTS tenant_id bigint NOT NULL DEFAULT NULL;
