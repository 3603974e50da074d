-- The lag dashboard's history: the pipeline's state (stream, consumers, dead letters) every few
-- seconds, kept one hour, so its charts survive a page reload and an API restart. Written by the
-- API processes; one row per time slot (the first writer of a slot wins, so several API replicas
-- write each slot once).
CREATE TABLE pipeline_samples (
    at     timestamptz PRIMARY KEY,
    sample jsonb       NOT NULL
);
