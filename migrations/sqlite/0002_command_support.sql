-- Tables the command API needs beside the event store (see the Postgres twin).

CREATE TABLE idempotency_keys
(
    principal   text    NOT NULL,
    key         text    NOT NULL,
    fingerprint text    NOT NULL,
    state       text    NOT NULL CHECK (state IN ('pending', 'done')),
    status_code integer,
    response    text,
    created_at  text    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (principal, key)
) STRICT;
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

CREATE TABLE user_emails
(
    email       text NOT NULL PRIMARY KEY,
    user_id     text NOT NULL,
    reserved_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE INDEX events_idempotency_key_idx ON events (json_extract(metadata, '$.idempotency_key'))
    WHERE json_extract(metadata, '$.idempotency_key') IS NOT NULL;
