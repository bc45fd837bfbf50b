-- expect: none
CREATE TABLE clients_new (id bigint, name text);
ALTER TABLE clients_new RENAME TO clients_v2;
