-- Every transaction that changes a site's sessions raises the site's generation, under the
-- site's aggregation lock. An aggregator that keeps the sessions it wrote in memory may use them
-- only while the generation it reads is one past the one its own last commit left: then nobody
-- else (another aggregator, the closing task, the prune) changed the site's sessions in between.
CREATE TABLE site_generations (
    site text PRIMARY KEY,
    generation bigint NOT NULL
);
