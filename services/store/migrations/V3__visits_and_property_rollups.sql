-- Visits, and rollups per property value with a visitor sketch (replacing rollup_counts).

-- The aggregator's session state: one row per visit (or per ping-only session that may still
-- become one). Times are Unix milliseconds, exactly as the events carry them.
-- A session is open until nothing touched it for the close delay; only closed sessions are in
-- the visit rollups (the API adds open ones from here), so a visit whose exit page or end is
-- still moving never leaves a stale visitor in a rollup sketch.
CREATE TABLE sessions (
    site            text    NOT NULL,
    visitor_id      bigint  NOT NULL,
    start_ms        bigint  NOT NULL,
    end_ms          bigint  NOT NULL,
    pageviews       integer NOT NULL,
    events          integer NOT NULL,
    interactions    integer NOT NULL,
    entry_page      text,
    entry_ms        bigint,
    exit_page       text,
    exit_ms         bigint,
    -- Rank of the event the attributes came from (its time; pings rank after any counted event).
    attrs_rank      bigint  NOT NULL,
    source          text    NOT NULL,
    referrer        text    NOT NULL,
    utm_medium      text    NOT NULL,
    utm_source      text    NOT NULL,
    utm_campaign    text    NOT NULL,
    utm_content     text    NOT NULL,
    utm_term        text    NOT NULL,
    country         text    NOT NULL,
    browser         text    NOT NULL,
    browser_version text    NOT NULL,
    os              text    NOT NULL,
    os_version      text    NOT NULL,
    device          text    NOT NULL,
    closed          boolean NOT NULL DEFAULT false,
    touched_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, visitor_id, start_ms)
);
CREATE INDEX sessions_end ON sessions (end_ms);
CREATE INDEX sessions_open ON sessions (site, touched_at) WHERE NOT closed;

-- Counters per site, 15-minute bucket (UTC start), property and value. property '' is the
-- site-wide event row, 'visit' the site-wide visit row; see pipeline/src/rollup.rs.
-- visitors is a VisitorSketch (pipeline/src/sketch.rs); NULL means no visitor yet.
CREATE TABLE rollups (
    site        text        NOT NULL,
    property    text        NOT NULL,
    value       text        NOT NULL,
    bucket      timestamptz NOT NULL,
    pageviews   bigint      NOT NULL DEFAULT 0,
    events      bigint      NOT NULL DEFAULT 0,
    visits      bigint      NOT NULL DEFAULT 0,
    bounces     bigint      NOT NULL DEFAULT 0,
    duration_ms bigint      NOT NULL DEFAULT 0,
    visitors    bytea,
    PRIMARY KEY (site, property, value, bucket)
);

INSERT INTO rollups (site, property, value, bucket, pageviews, events)
SELECT site, '', '', bucket, pageviews, events FROM rollup_counts;
DROP TABLE rollup_counts;

CREATE INDEX applied_events_age ON applied_events (applied_at);
