-- Goals a site's owner configured: a custom event by its name, or page views of a path pattern
-- (`*` wildcards, as in page filters). `event:goal`
-- breakdowns list these and only these; a page goal is shown as `Visit <pattern>`, as Plausible does.
CREATE TABLE goals (
    id         bigserial   PRIMARY KEY,
    site_id    bigint      NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    kind       text        NOT NULL CHECK (kind IN ('event', 'page')),
    value      text        NOT NULL CHECK (length(value) BETWEEN 1 AND 1000),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, kind, value)
);
