-- analytics: additive counters by day (the event's recorded day, UTC).
CREATE TABLE analytics_daily_g{g}
(
    day                text    NOT NULL,
    currency           text    NOT NULL,
    revenue_minor      integer NOT NULL DEFAULT 0,
    orders_placed      integer NOT NULL DEFAULT 0,
    orders_paid        integer NOT NULL DEFAULT 0,
    orders_cancelled   integer NOT NULL DEFAULT 0,
    placed_value_minor integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency)
);

CREATE TABLE analytics_customers_g{g}
(
    day           text    NOT NULL PRIMARY KEY,
    new_customers integer NOT NULL DEFAULT 0
);

-- Per day and product, counted when the order is paid (the name is the
-- one the order recorded).
CREATE TABLE analytics_products_g{g}
(
    day           text    NOT NULL,
    sku           text    NOT NULL,
    currency      text    NOT NULL,
    name          text    NOT NULL,
    quantity      integer NOT NULL DEFAULT 0,
    revenue_minor integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, sku, currency, name)
);

-- The same per month (`YYYY-MM`): a range's whole months are read here and
-- only the days at its edges from analytics_products (a year's top products
-- read ~12 rows per product instead of ~365).
CREATE TABLE analytics_products_monthly_g{g}
(
    month         text    NOT NULL,
    sku           text    NOT NULL,
    currency      text    NOT NULL,
    name          text    NOT NULL,
    quantity      integer NOT NULL DEFAULT 0,
    revenue_minor integer NOT NULL DEFAULT 0,
    PRIMARY KEY (month, sku, currency, name)
);

-- Payment outcomes: initiated, captured, failed (with the reason), refunded.
CREATE TABLE analytics_payments_g{g}
(
    day     text    NOT NULL,
    outcome text    NOT NULL,
    reason  text    NOT NULL DEFAULT '',
    count   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, outcome, reason)
);

-- The funnel: created, placed, paid, shipped, delivered (and cancelled).
CREATE TABLE analytics_funnel_g{g}
(
    day   text    NOT NULL,
    stage text    NOT NULL,
    count integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, stage)
);

-- What analytics needs to remember about an order between its events.
CREATE TABLE analytics_orders_g{g}
(
    order_id text NOT NULL PRIMARY KEY,
    doc      text NOT NULL
);
