-- expect: ban-rewriting-alter-table
-- hazards: rewrites-table
ALTER TABLE page_views SET UNLOGGED;
