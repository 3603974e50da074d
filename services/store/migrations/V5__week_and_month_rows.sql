-- Week rows (local Monday to Sunday) and month rows (local calendar months) beside the 15-minute
-- and day rows: every delta is written to one row of each span, so a 30-day range reads about ten
-- rows per value instead of thirty, and a year twelve instead of 365.
ALTER TABLE rollups DROP CONSTRAINT rollups_span_check;
ALTER TABLE rollups ADD CONSTRAINT rollups_span_check
    CHECK (span IN ('15m', 'day', 'week', 'month'));

-- One-time data steps run by Beacon right after the schema migrations (they need Rust: sketches
-- are merged there). The week and month rows of the history written before this migration are
-- built from its day rows (services/store/src/calendar_rows.rs) and recorded here.
CREATE TABLE data_migrations (
    name    text        PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT now()
);

-- Sketches are stored as their raw registers (16 KiB once past 512 visitors) and a query merges
-- hundreds of them: keep them out of line but uncompressed, so reading one is a copy instead of a
-- decompression (about three times faster here, for about three times the space of those rows).
-- Applies to values written from now on.
ALTER TABLE rollups ALTER COLUMN visitors SET STORAGE EXTERNAL;
