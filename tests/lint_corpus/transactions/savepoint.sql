-- expect: transaction-nesting
SAVEPOINT before_backfill;
UPDATE orders SET note = '' WHERE note IS NULL;
RELEASE SAVEPOINT before_backfill;
