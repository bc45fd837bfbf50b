-- expect: prefer-bigint-over-smallint
CREATE TABLE ratings (id bigint GENERATED ALWAYS AS IDENTITY, stars smallint NOT NULL);
