-- expect: none
CREATE TYPE shipping_speed AS ENUM ('standard', 'express');
ALTER TYPE shipping_speed ADD VALUE 'overnight';
