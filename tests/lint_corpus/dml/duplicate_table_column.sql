-- expect: ban-duplicate-column-assignments
CREATE TABLE audit_events (id bigint, kind text, kind text);
