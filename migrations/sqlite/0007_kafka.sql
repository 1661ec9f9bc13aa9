-- Kept in step with the Postgres schema (the Kafka profile runs on
-- Postgres; the registry code reads this table on both backends).
CREATE TABLE projection_kafka_offsets
(
    name            TEXT    NOT NULL,
    generation      INTEGER NOT NULL,
    topic           TEXT    NOT NULL,
    partition       INTEGER NOT NULL,
    next_offset     INTEGER NOT NULL,
    cursor_txid     TEXT    NOT NULL,
    cursor_position INTEGER NOT NULL,
    PRIMARY KEY (name, generation, topic, partition)
);
