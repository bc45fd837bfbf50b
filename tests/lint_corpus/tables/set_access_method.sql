-- expect: ban-rewriting-alter-table
-- hazards: rewrites-table
ALTER TABLE measurements SET ACCESS METHOD columnar;
