-- The order–payment saga's durable state: its place in the log, and the
-- payments it watches with their deadlines (a deadline that passed while
-- the process was down fires on start).
CREATE TABLE saga_checkpoints
(
    name            text   NOT NULL PRIMARY KEY,
    cursor_txid     text   NOT NULL DEFAULT '0',
    cursor_position integer NOT NULL DEFAULT 0,
    updated_at      text   NOT NULL
);

CREATE TABLE saga_payments
(
    payment_id text NOT NULL PRIMARY KEY,
    order_id   text NOT NULL,
    due_at     text NOT NULL,
    -- open (waiting for capture or failure), settled, expired
    state      text NOT NULL
);
CREATE INDEX saga_payments_due_idx ON saga_payments (state, due_at);
CREATE INDEX saga_payments_order_idx ON saga_payments (order_id);
