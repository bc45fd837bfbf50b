-- expect: prefer-timestamptz
CREATE TABLE bookings (id bigint GENERATED ALWAYS AS IDENTITY, starts_at timestamp(0) without time zone NOT NULL);
