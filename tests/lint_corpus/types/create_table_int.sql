-- expect: prefer-bigint-over-int
CREATE TABLE page_counters (page text PRIMARY KEY, hits integer NOT NULL DEFAULT 0);
