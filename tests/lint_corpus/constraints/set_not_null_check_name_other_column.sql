-- expect: setting-not-nullable-field
-- pg-version: 12
-- The validated check is for users.org_id, not users.id: its name only contains "_id_".
ALTER TABLE users VALIDATE CONSTRAINT users_org_id_not_null;
ALTER TABLE users ALTER COLUMN id SET NOT NULL;
