-- The projection registry: one row per (projection, generation). A
-- generation is one build of a projection's tables (`<table>_g<N>`); the
-- live one is what the read-model views point at. The checkpoint (a log
-- cursor) commits in the same transaction as the rows it covers.
CREATE TABLE projection_state
(
    name            text    NOT NULL,
    generation      bigint  NOT NULL,
    version         bigint  NOT NULL,
    state           text    NOT NULL CHECK (state IN ('live', 'rebuilding', 'failed', 'retired')),
    cursor_txid     text    NOT NULL DEFAULT '0',
    cursor_position bigint  NOT NULL DEFAULT 0,
    events_applied  bigint  NOT NULL DEFAULT 0,
    last_event_at   text,
    error           text,
    error_position  bigint,
    updated_at      text    NOT NULL,
    CONSTRAINT projection_state_pkey PRIMARY KEY (name, generation)
);

CREATE TABLE projection_live
(
    name       text   NOT NULL,
    generation bigint NOT NULL,
    CONSTRAINT projection_live_pkey PRIMARY KEY (name)
);

-- Tailers wake on this channel instead of polling (they still poll slowly
-- as a safety net: a notification is a hint, the log is the truth).
CREATE FUNCTION shopstream_notify_events() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('shopstream_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION shopstream_notify_events();
