-- Rollup epoch (sqlite).
--
-- Nothing to change: on PostgreSQL ingestion remembers the rollup rows it
-- committed and skips merges they already cover, guarded by an epoch that
-- every deletion of rollup rows bumps (the migration of the same version).
-- SQLite has one writer and merges every batch's rollup rows as before.
SELECT 1;
