-- The event store: sqlite-es's `events` and `snapshots` tables with the
-- columns shopstream adds. SQLite has one writer, so commit order is position
-- order and no transaction id is needed.

CREATE TABLE events
(
    aggregate_type text                          NOT NULL,
    aggregate_id   text                          NOT NULL,
    sequence       integer CHECK (sequence >= 0) NOT NULL,
    event_type     text                          NOT NULL,
    event_version  text                          NOT NULL,
    payload        text                          NOT NULL,
    metadata       text                          NOT NULL,
    position       integer UNIQUE,
    event_id       text UNIQUE,
    recorded_at    text,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE TABLE snapshots
(
    aggregate_type   text                                  NOT NULL,
    aggregate_id     text                                  NOT NULL,
    last_sequence    integer CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
    payload          text                                  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;

-- sqlite-es inserts only its own columns; this trigger assigns the global
-- position, a random (v4) event id and the recording time inside the same
-- write transaction, which SQLite serializes.
CREATE TRIGGER events_assign_position AFTER INSERT ON events
BEGIN
    UPDATE events
    SET position    = (SELECT COALESCE(MAX(position), 0) + 1 FROM events),
        event_id    = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
                      || substr(lower(hex(randomblob(2))), 2) || '-'
                      || substr('89ab', 1 + (abs(random()) % 4), 1)
                      || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
        recorded_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE rowid = NEW.rowid;
END;
