-- Data protection (crypto-shredding); see the Postgres twin.
CREATE TABLE data_keys
(
    subject      text NOT NULL PRIMARY KEY,
    master_key   text,
    wrapped      text,
    created_at   text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    forgotten_at text,
    CHECK ((master_key IS NULL) = (wrapped IS NULL))
) STRICT;
CREATE INDEX data_keys_master_key_idx ON data_keys (master_key) WHERE master_key IS NOT NULL;
