-- Visits, and rollups per property value with a visitor sketch (replacing rollup_counts).

-- The aggregator's session state: one row per visit (or per ping-only session that may still
-- become one). Times are Unix milliseconds, exactly as the events carry them.
-- A session is open until nothing touched it for the close delay; only closed sessions are in
-- the visit rollups (the API adds open ones from here), so a visit whose exit page or end is
-- still moving never leaves a stale visitor in a rollup sketch.
CREATE TABLE sessions (
    site       text        NOT NULL,
    visitor_id bigint      NOT NULL,
    start_ms   bigint      NOT NULL,
    end_ms     bigint      NOT NULL,
    closed     boolean     NOT NULL DEFAULT false,
    touched_at timestamptz NOT NULL DEFAULT now(),
    -- The whole pipeline::session::Session (counts, entry/exit page, visit properties) as
    -- MessagePack: written and read only by Beacon's own code, in one piece.
    state      bytea       NOT NULL,
    PRIMARY KEY (site, visitor_id, start_ms)
) WITH (fillfactor = 80);
-- Only columns a visit's update never changes are indexed, so extending a visit is a HOT update.
CREATE INDEX sessions_open ON sessions (site) WHERE NOT closed;

-- Counters per site, property, value and bucket. span '15m': 15-minute buckets of UTC (hourly
-- series); span 'day': local days of the site's zone, bucket = the local midnight (every other
-- query). Every delta is written to both. property '' is the site-wide event row, 'visit' the
-- site-wide visit row; see pipeline/src/rollup.rs. visitors is a VisitorSketch
-- (pipeline/src/sketch.rs); NULL means no visitor yet.
CREATE TABLE rollups (
    site        text        NOT NULL,
    property    text        NOT NULL,
    value       text        NOT NULL,
    span        text        NOT NULL CHECK (span IN ('15m', 'day')),
    bucket      timestamptz NOT NULL,
    pageviews   bigint      NOT NULL DEFAULT 0,
    events      bigint      NOT NULL DEFAULT 0,
    visits      bigint      NOT NULL DEFAULT 0,
    bounces     bigint      NOT NULL DEFAULT 0,
    duration_ms bigint      NOT NULL DEFAULT 0,
    visitors    bytea,
    PRIMARY KEY (site, property, span, value, bucket)
);

-- rollup_counts had page views and custom events per UTC 15-minute bucket only (no visitors, no
-- visits): they carry over as 15-minute rows. Day rows for that history need a replay.
INSERT INTO rollups (site, property, value, span, bucket, pageviews, events)
SELECT site, '', '', '15m', bucket, pageviews, events FROM rollup_counts;
DROP TABLE rollup_counts;
