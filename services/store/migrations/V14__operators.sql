-- Operators: the users who may see the pipeline as a whole (the stream's and consumers' lag, dead
-- letters, every site's backfills), which tells of every tenant's traffic. Owners see their own
-- sites' statistics only. `beacon user add EMAIL --operator` or `beacon user operator EMAIL`.
ALTER TABLE users ADD COLUMN operator boolean NOT NULL DEFAULT false;
