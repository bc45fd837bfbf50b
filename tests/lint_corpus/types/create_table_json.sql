-- expect: prefer-jsonb
CREATE TABLE webhooks (id bigint GENERATED ALWAYS AS IDENTITY, body json NOT NULL);
