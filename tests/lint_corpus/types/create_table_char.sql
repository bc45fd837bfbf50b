-- expect: ban-char-field
CREATE TABLE currencies (code character(3) PRIMARY KEY, name text NOT NULL);
