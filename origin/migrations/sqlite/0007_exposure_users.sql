-- Per-user exposure rollup (sqlite): one row per (environment, flag,
-- user) with the user's first exposure (time and variant; ties at the same
-- millisecond: the smallest variant) and the smallest and largest variant
-- they were ever served (vmin <> vmax: exposed to several arms). A trigger
-- merges every inserted exposure into it; every merge is a min or max, so a
-- retried or reordered batch leaves it the same. Experiment
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
-- Users first exposed before a time: the analysis reads them from the raw
-- exposures (their first exposure within an experiment is not the rollup's).
-- Covering (the key's user_key is in every index of a WITHOUT ROWID table):
-- the users per arm and day are read from it without a row lookup each.
CREATE INDEX exposure_users_first ON exposure_users (environment, flag_key, first_ms, variant, vmin, vmax);
-- Ingestion: every exposure row actually inserted (not a skipped duplicate)
-- merges into its user's row, inside the insert's statement. The update
-- only writes when it changes something (an earlier exposure or a new
-- variant).
CREATE TRIGGER exposures_rollup AFTER INSERT ON exposures BEGIN
    INSERT INTO exposure_users (environment, flag_key, user_key, first_ms, variant, vmin, vmax)
    VALUES (NEW.environment, NEW.flag_key, NEW.user_key, NEW.time_ms, NEW.variant, NEW.variant, NEW.variant)
    ON CONFLICT (environment, flag_key, user_key) DO UPDATE SET
        first_ms = MIN(first_ms, excluded.first_ms),
        variant = CASE WHEN excluded.first_ms < first_ms
            OR (excluded.first_ms = first_ms AND excluded.variant < variant)
            THEN excluded.variant ELSE variant END,
        vmin = MIN(vmin, excluded.vmin),
        vmax = MAX(vmax, excluded.vmax)
    WHERE excluded.first_ms < first_ms
        OR (excluded.first_ms = first_ms AND excluded.variant < variant)
        OR excluded.vmin < vmin OR excluded.vmax > vmax;
END;
-- Existing exposures are rolled up by the store right after this migration
-- (Store::rebuild_exposure_users, the same statement operators can run).
