-- A quiet visit whose closing PostgreSQL refuses (its data cannot be written to the visit rows)
-- is set aside instead of failing the closing of every other visit on every tick: `quarantine`
-- holds the reason, and closing skips the row until an operator clears it
-- (`beacon sessions retry`). The visit stays open, so the API keeps counting it from `sessions`.
ALTER TABLE sessions ADD COLUMN quarantine text, ADD COLUMN quarantined_at timestamptz;
