-- Data protection (crypto-shredding): one data key per user seals that
-- user's personal fields in the events; each is stored wrapped by a master
-- key (identified by `master_key`) that never enters the database. Forgetting
-- a user erases the key and leaves the row as a tombstone (both NULL), so
-- the key is never created again. The row `email-index` holds the key of
-- the keyed hash that `user_emails` stores instead of addresses.
CREATE TABLE data_keys
(
    subject      text        NOT NULL,
    master_key   text,
    wrapped      text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    forgotten_at timestamptz,
    CONSTRAINT data_keys_pkey PRIMARY KEY (subject),
    CONSTRAINT data_keys_tombstone CHECK ((master_key IS NULL) = (wrapped IS NULL))
);
CREATE INDEX data_keys_master_key_idx ON data_keys (master_key) WHERE master_key IS NOT NULL;
