-- Readers waiting for a consistency token wake when a projection commits
-- (a hint: they re-read the checkpoints, which are the truth).
CREATE FUNCTION shopstream_notify_projections() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('shopstream_projections', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER projection_state_notify AFTER UPDATE ON projection_state
    FOR EACH STATEMENT EXECUTE FUNCTION shopstream_notify_projections();
