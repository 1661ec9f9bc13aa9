-- The event store: postgres-es's `events` and `snapshots` tables, plus what
-- shopstream needs to tail the store safely (ARCHITECTURE invariants 2 and 3).

CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    CONSTRAINT snapshots_pkey PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- postgres-es inserts only its own columns; the defaults below fill the rest.
--   position        global position, unique, assigned at insert.
--   transaction_id  the inserting transaction. Sequences commit out of order,
--                   so tailers read only rows whose transaction is older than
--                   every transaction still running (pg_snapshot_xmin) and
--                   order the log by (transaction_id, position).
--   event_id        a unique id for consumers that deduplicate by id.
--   recorded_at     when the store recorded the event.
ALTER TABLE events
    ADD COLUMN position       bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    ADD COLUMN event_id       uuid        NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp();

ALTER TABLE events
    ADD CONSTRAINT events_position_key UNIQUE (position),
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);

-- The tailing order.
CREATE INDEX events_log_order_idx ON events (transaction_id, position);
