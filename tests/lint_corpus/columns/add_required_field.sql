-- expect: adding-required-field
-- hazards: may-fail-on-data, breaks-clients
ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;
