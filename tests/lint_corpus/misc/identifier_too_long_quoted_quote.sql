-- expect: identifier-too-long
-- A quoted name with "" in it: PostgreSQL stores each "" as one ", and the name is still
-- 73 bytes, so it is truncated to 63.
CREATE TABLE IF NOT EXISTS "legacy ""v1"" export of order line items with their original currency codes" (id bigint PRIMARY KEY);
