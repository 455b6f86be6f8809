-- The rollup without its first-exposure index (sqlite).
--
-- Nothing to change: the PostgreSQL migration of the same version drops
-- `exposure_users_first` to make new rollup rows cheaper to ingest. On
-- SQLite the analysis's early users are still found through it (its
-- planner would otherwise scan the exposures first), and its one writer
-- merges the rollup in a trigger.
SELECT 1;
