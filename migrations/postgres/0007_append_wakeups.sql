-- Appenders notify tailers after their commit instead (eventlog's
-- AppendSignal): a NOTIFY inside the appending transaction holds
-- PostgreSQL's notification lock through the commit's WAL flush, so every
-- append committed one after the other.
DROP TRIGGER events_notify ON events;
DROP FUNCTION shopstream_notify_events();
