-- expect: none
-- Written in 65 characters, but each "" is one byte of the name: 63 bytes, kept whole.
CREATE TABLE IF NOT EXISTS "report ""v2"" of order line items in their original currencysssss" (id bigint PRIMARY KEY);
