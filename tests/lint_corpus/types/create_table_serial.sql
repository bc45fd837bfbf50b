-- expect: prefer-identity, prefer-bigint-over-int
CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL);
