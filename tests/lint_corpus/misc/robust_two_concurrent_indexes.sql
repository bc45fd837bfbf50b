-- expect: prefer-robust-stmts
CREATE INDEX CONCURRENTLY accounts_email_idx ON accounts (email);
CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_created_at_idx ON accounts (created_at);
