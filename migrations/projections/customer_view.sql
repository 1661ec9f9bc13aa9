-- customer_view: one row per user, plus the customer's orders.
CREATE TABLE customer_view_g{g}
(
    user_id       text    NOT NULL PRIMARY KEY,
    email         text    NOT NULL,
    name          text    NOT NULL,
    status        text    NOT NULL,
    registered_at text    NOT NULL,
    order_count   integer NOT NULL,
    last_order_at text,
    -- {"counts_by_status": {...}, "lifetime_spend": {"EUR": 1234}, "shipping_address": {...}}
    doc           text    NOT NULL
);
CREATE INDEX customer_view_g{g}_email_idx ON customer_view_g{g} (email);
CREATE INDEX customer_view_g{g}_registered_idx ON customer_view_g{g} (registered_at, user_id);

CREATE TABLE customer_orders_g{g}
(
    order_id       text    NOT NULL PRIMARY KEY,
    customer_id    text    NOT NULL,
    status         text    NOT NULL,
    currency       text    NOT NULL,
    total_minor    integer NOT NULL,
    item_count     integer NOT NULL,
    created_at     text    NOT NULL,
    placed_at      text,
    payment_status text,
    doc            text    NOT NULL
);
CREATE INDEX customer_orders_g{g}_customer_idx ON customer_orders_g{g} (customer_id, created_at, order_id);

-- Which order and customer a payment belongs to (payment events after the
-- first carry neither).
CREATE TABLE customer_payments_g{g}
(
    payment_id text NOT NULL PRIMARY KEY,
    doc        text NOT NULL
);
