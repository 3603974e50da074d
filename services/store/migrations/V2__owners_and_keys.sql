-- Owners and their API keys; sites belong to an owner.

CREATE TABLE users (
    id            bigserial   PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    -- Argon2id PHC string; NULL for accounts that only use API keys.
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- API keys are shown once and stored as SHA-256 of the key (they are 256 random bits, so a fast
-- hash is enough); `prefix` identifies a key in listings without revealing it.
CREATE TABLE api_keys (
    id           bigserial   PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    prefix       text        NOT NULL,
    key_hash     bytea       NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

ALTER TABLE sites ADD COLUMN owner_id bigint REFERENCES users (id);
ALTER TABLE sites DROP COLUMN owner_email;
