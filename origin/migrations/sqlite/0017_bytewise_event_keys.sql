-- Event key columns compare byte by byte (sqlite).
--
-- Nothing to change: SQLite's default collation, BINARY, already compares
-- text with memcmp. The PostgreSQL migration of the same version gives its
-- event and rollup key columns `COLLATE "C"` so that both backends (and
-- the rollup's Rust grouping) order keys and variants the same way.
SELECT 1;
