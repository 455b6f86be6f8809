-- Per-user exposure rollup (postgres): one row per (environment, flag,
-- user) with the user's first exposure (time and variant; ties at the same
-- millisecond: the smallest variant) and the smallest and largest variant
-- they were ever served (vmin <> vmax: exposed to several arms). The
-- exposure insert merges the batch's per-user rows into it in the same
-- statement; every merge is a min or max, so a retried or reordered batch
-- leaves it the same. Experiment
-- analysis reads it instead of every raw exposure (10M exposures of 2M
-- users: 2M rows), falling back to the raw exposures only for the users
-- exposed before an experiment's start (docs/performance.md).
CREATE TABLE exposure_users (
    environment TEXT NOT NULL,
    flag_key    TEXT NOT NULL,
    user_key    TEXT NOT NULL,
    first_ms    BIGINT NOT NULL,
    variant     TEXT NOT NULL,
    vmin        TEXT NOT NULL,
    vmax        TEXT NOT NULL,
    -- Covering: the analysis reads users in key order from the index alone.
    PRIMARY KEY (environment, flag_key, user_key) INCLUDE (first_ms, variant, vmin, vmax)
);
-- Users first exposed before a time: the analysis reads them from the raw
-- exposures (their first exposure within an experiment is not the rollup's).
CREATE INDEX exposure_users_first ON exposure_users (environment, flag_key, first_ms);
-- Existing exposures are rolled up by the store right after this migration
-- (Store::rebuild_exposure_users, the same statement operators can run).
