-- Which event types and versions the store holds: the start-up gate reads
-- them by seeking this index (one seek per distinct type@version), never by
-- scanning the log.
CREATE INDEX events_type_version_idx ON events (event_type, event_version, position);
