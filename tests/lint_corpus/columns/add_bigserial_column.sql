-- expect: adding-field-with-default, prefer-identity
ALTER TABLE audit_log ADD COLUMN seq bigserial;
