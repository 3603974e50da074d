-- `beacon import --format plausible-csv`: daily aggregates from another tool (Plausible's
-- imported_* tables), kept beside the rollups and never mixed into them: the API adds them only
-- when asked (`with_imported=true`). One row per site, Beacon property (the rollups' names; ''
-- for the site's totals), local day of the site and value. visitors are that day's unique
-- visitors as the other tool counted them: over several days they can only be summed.
CREATE TABLE imported_daily (
    site       text   NOT NULL,
    property   text   NOT NULL,
    value      text   NOT NULL,
    day        date   NOT NULL,
    visitors   bigint NOT NULL DEFAULT 0,
    pageviews  bigint NOT NULL DEFAULT 0,
    events     bigint NOT NULL DEFAULT 0,
    visits     bigint NOT NULL DEFAULT 0,
    bounces    bigint NOT NULL DEFAULT 0,
    duration_s bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site, property, day, value)
);
