-- Replays, imports and exports while they run: each keeps a row up to date with its progress
-- (a heartbeat every few seconds) and deletes it at the end, so `beacon lag` and /api/pipeline can
-- show them. A row whose heartbeat stopped (the process was killed) is ignored after a minute and
-- deleted by the next run that starts.
CREATE TABLE backfill_runs (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL,
    site       text        NOT NULL,
    done       bigint      NOT NULL DEFAULT 0,
    total      bigint,
    unit       text        NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
