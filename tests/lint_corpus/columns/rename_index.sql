-- expect: none
-- Clients never name an index: renaming one breaks nobody.
ALTER INDEX users_email_idx RENAME TO users_email_key;
