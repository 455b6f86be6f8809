-- Per-user exposure rollup (sqlite): one row per (environment, flag,
-- user) with the user's first exposure (time and variant; ties at the same
-- millisecond: the smallest variant) and the smallest and largest variant
-- they were ever served (vmin <> vmax: exposed to several arms). Ingestion
-- upserts it in the exposure insert's transaction; every merge is a min or
-- max, so a retried or reordered batch leaves it the same. Experiment
-- analysis reads it instead of every raw exposure, falling back to the raw
-- exposures only for the users exposed before an experiment's start
-- (docs/performance.md). WITHOUT ROWID: the table is its key's index.
CREATE TABLE exposure_users (
    environment TEXT NOT NULL,
    flag_key    TEXT NOT NULL,
    user_key    TEXT NOT NULL,
    first_ms    INTEGER NOT NULL,
    variant     TEXT NOT NULL,
    vmin        TEXT NOT NULL,
    vmax        TEXT NOT NULL,
    PRIMARY KEY (environment, flag_key, user_key)
) WITHOUT ROWID;
INSERT INTO exposure_users
SELECT g.environment, g.flag_key, g.user_key, g.t0,
       (SELECT MIN(x.variant) FROM exposures x WHERE x.environment = g.environment
          AND x.flag_key = g.flag_key AND x.user_key = g.user_key AND x.time_ms = g.t0),
       g.vmin, g.vmax
FROM (SELECT environment, flag_key, user_key, MIN(time_ms) AS t0, MIN(variant) AS vmin,
             MAX(variant) AS vmax
      FROM exposures GROUP BY environment, flag_key, user_key) g;
