-- The projection registry (see the Postgres twin).
CREATE TABLE projection_state
(
    name            text    NOT NULL,
    generation      integer NOT NULL,
    version         integer NOT NULL,
    state           text    NOT NULL CHECK (state IN ('live', 'rebuilding', 'failed', 'retired')),
    cursor_txid     text    NOT NULL DEFAULT '0',
    cursor_position integer NOT NULL DEFAULT 0,
    events_applied  integer NOT NULL DEFAULT 0,
    last_event_at   text,
    error           text,
    error_position  integer,
    updated_at      text    NOT NULL,
    PRIMARY KEY (name, generation)
) STRICT;

CREATE TABLE projection_live
(
    name       text    NOT NULL PRIMARY KEY,
    generation integer NOT NULL
) STRICT;
