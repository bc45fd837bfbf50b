-- expect: none
CREATE TABLE profiles (id bigint, bio text);
ALTER TABLE profiles RENAME COLUMN bio TO biography;
