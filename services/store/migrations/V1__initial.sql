-- Beacon's PostgreSQL schema, version 1. Every table lives in the namespace's schema
-- (search_path is set to it on connect), so isolated Beacons share one database.

-- Sites an owner registered; events for other domains are refused at the collector.
CREATE TABLE sites (
    id          bigserial   PRIMARY KEY,
    domain      text        NOT NULL UNIQUE,
    timezone    text        NOT NULL DEFAULT 'UTC',
    owner_email text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Daily secret salts of the visitor hash. Older than yesterday's are deleted, which makes old
-- visitor ids unlinkable to anything.
CREATE TABLE salts (
    day  date  PRIMARY KEY,
    salt bytea NOT NULL CHECK (length(salt) = 16)
);

-- Ids of events whose effects are in the rollups. Inserted in the same transaction as the rollup
-- deltas, so a redelivered event finds its id here and changes nothing.
CREATE TABLE applied_events (
    event_id   uuid        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Counts per site per 15-minute bucket of event time (UTC).
CREATE TABLE rollup_counts (
    site      text        NOT NULL,
    bucket    timestamptz NOT NULL,
    pageviews bigint      NOT NULL DEFAULT 0,
    events    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (site, bucket)
);
