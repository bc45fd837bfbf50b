-- expect: none
UPDATE users SET email = lower(email) WHERE email <> lower(email) AND id BETWEEN 1 AND 50000;
