-- `beacon import`: the ids of the events an import has handed to the stream, so that importing a
-- file again — next week, or after a kill halfway — adds nothing, long after the stream's
-- duplicate window and the aggregator's dedup window have forgotten them. And each site's import
-- key: the secret the visitor ids of historical events are hashed with (the live daily salts of
-- those days are long gone, and a key of its own keeps a re-run's ids the same).
CREATE TABLE imported_events (
    event_id    uuid        PRIMARY KEY,
    site_id     bigint      NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    imported_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE import_keys (
    site_id bigint PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    key     bytea  NOT NULL CHECK (length(key) = 16)
);
