-- The exposures' analysis index as a hash of (flag, user) (sqlite).
--
-- Nothing to change: the PostgreSQL migration of the same version replaces
-- its B-tree `exposures_analysis` with a hash index to make exposures
-- cheaper to ingest. SQLite has no hash indexes, and its analysis reads
-- the B-tree in key order.
SELECT 1;
