-- The distributed profile. The relay's checkpoint: the last event the
-- broker acknowledged together with everything before it (log order).
CREATE TABLE relay_checkpoint
(
    name            text        NOT NULL,
    cursor_txid     text        NOT NULL DEFAULT '0',
    cursor_position bigint      NOT NULL DEFAULT 0,
    recorded_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT relay_checkpoint_pkey PRIMARY KEY (name)
);

-- A projection consuming Kafka keeps its place per partition here, in the
-- same transaction as its read-model rows: the next offset to read, and
-- the cursor of the last record seen in that partition (records at or
-- before it are duplicates from a re-publishing relay).
CREATE TABLE projection_kafka_offsets
(
    name            text    NOT NULL,
    generation      bigint  NOT NULL,
    topic           text    NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint  NOT NULL,
    cursor_txid     text    NOT NULL,
    cursor_position bigint  NOT NULL,
    CONSTRAINT projection_kafka_offsets_pkey PRIMARY KEY (name, generation, topic, partition)
);

-- Which projector processes share a projection's partitions: each member
-- renews its row every second; a row older than the session timeout is a
-- dead member, and the survivors split its partitions among themselves.
CREATE TABLE projection_kafka_members
(
    name         text        NOT NULL,
    member_id    text        NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projection_kafka_members_pkey PRIMARY KEY (name, member_id)
);
