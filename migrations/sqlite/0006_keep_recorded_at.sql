-- Keep a recorded time the writer supplies (the documented bulk seed path
-- writes simulated times); stamp `now` otherwise, as before.
DROP TRIGGER events_assign_position;

CREATE TRIGGER events_assign_position AFTER INSERT ON events
BEGIN
    UPDATE events
    SET position    = (SELECT COALESCE(MAX(position), 0) + 1 FROM events),
        event_id    = lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4'
                      || substr(lower(hex(randomblob(2))), 2) || '-'
                      || substr('89ab', 1 + (abs(random()) % 4), 1)
                      || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
        recorded_at = COALESCE(NEW.recorded_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    WHERE rowid = NEW.rowid;
END;
