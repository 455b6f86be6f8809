-- Incremental experiment looks (sqlite).
--
-- On PostgreSQL a look at an experiment updates stored per-(arm, day) sums
-- from the rows written since the previous look (store::results_cache).
-- SQLite aggregates every look in full and stores nothing here; the table
-- exists so that the statements that drop cached looks (retention, rollup
-- rebuilds) are the same on both backends.
CREATE TABLE analysis_cache (
    key      TEXT PRIMARY KEY,
    env_id   BIGINT NOT NULL,
    flag_key TEXT NOT NULL,
    state    TEXT NOT NULL,
    used_ms  BIGINT NOT NULL
);
CREATE INDEX analysis_cache_env ON analysis_cache (env_id, flag_key);
