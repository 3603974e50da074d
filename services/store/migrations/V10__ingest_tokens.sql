-- Site-scoped ingest tokens: a server-side sender presents one (Authorization: Bearer) to set an
-- event's ip, user_agent, timestamp and id on POST /track. Like API keys they are 256 random bits,
-- shown once and stored as their SHA-256; `prefix` names a token in listings.
CREATE TABLE ingest_tokens (
    id         bigserial   PRIMARY KEY,
    site_id    bigint      NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    prefix     text        NOT NULL,
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
