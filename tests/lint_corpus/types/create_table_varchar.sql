-- expect: prefer-text-field
CREATE TABLE contacts (id bigint GENERATED ALWAYS AS IDENTITY, email varchar(255) NOT NULL);
