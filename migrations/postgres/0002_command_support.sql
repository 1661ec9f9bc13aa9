-- Tables the command API needs beside the event store.

-- Idempotency keys (invariant 5): one row per (principal, key); the first
-- request inserts it as 'pending', executes, then stores its response.
CREATE TABLE idempotency_keys
(
    principal     text        NOT NULL,
    key           text        NOT NULL,
    fingerprint   text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('pending', 'done')),
    status_code   integer,
    response      json,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- An e-mail belongs to one user, even when two registrations race: the
-- primary key decides before the UserRegistered event is appended.
CREATE TABLE user_emails
(
    email       text        NOT NULL,
    user_id     text        NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT user_emails_pkey PRIMARY KEY (email)
);

-- Finds the events a request appended, to recover an idempotent request whose
-- process died between the append and storing the response.
CREATE INDEX events_idempotency_key_idx ON events ((metadata ->> 'idempotency_key'))
    WHERE metadata ->> 'idempotency_key' IS NOT NULL;
