-- Dashboard sign-ins: a random token lives in the browser's HttpOnly cookie; only its SHA-256 is
-- stored here, so a leaked table cannot be replayed as cookies.
CREATE TABLE login_sessions (
    token_hash bytea       PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);
