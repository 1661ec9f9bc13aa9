-- order_view: one row per order with items, totals, history, payment summary.
CREATE TABLE order_view_g{g}
(
    order_id    text    NOT NULL PRIMARY KEY,
    customer_id text    NOT NULL,
    status      text    NOT NULL,
    currency    text    NOT NULL,
    total_minor integer NOT NULL,
    item_count  integer NOT NULL,
    created_at  text    NOT NULL,
    updated_at  text    NOT NULL,
    -- {"items": [...], "history": [...], "payment": {...}}
    doc         text    NOT NULL
);
CREATE INDEX order_view_g{g}_customer_idx ON order_view_g{g} (customer_id, created_at, order_id);
CREATE INDEX order_view_g{g}_status_idx ON order_view_g{g} (status);
-- The live feed of changed orders (subscription orderFeed).
CREATE INDEX order_view_g{g}_updated_idx ON order_view_g{g} (updated_at);

CREATE TABLE order_payments_g{g}
(
    payment_id text NOT NULL PRIMARY KEY,
    doc        text NOT NULL
);
