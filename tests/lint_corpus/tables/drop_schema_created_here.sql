-- expect: none
CREATE SCHEMA scratch;
CREATE TABLE scratch.numbers (n bigint);
DROP SCHEMA scratch CASCADE;
