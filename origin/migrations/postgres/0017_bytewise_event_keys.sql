-- Event key columns compare byte by byte (postgres).
--
-- The keys of events and of the per-user rollup (ids, flag keys, metric
-- names, user keys, variants) are opaque identifiers, never text for
-- people to sort. Under the database's default collation (often
-- `C.UTF-8` or `en_US.UTF-8`) every index probe and every comparison goes
-- through the locale's collation routines; `COLLATE "C"` compares with
-- `memcmp`, which PostgreSQL short-cuts (abbreviated keys, no strcoll):
-- the inserts of issue 16's profile took 10-15 % less time.
--
-- It also makes the rollup's tie-breaks agree with the rest of the
-- system: `events::rollup` (Rust) and SQLite order variants by bytes, so
-- `MIN`/`MAX` of variants and the first exposure's variant on a
-- same-millisecond tie are now the same on every backend and every
-- database collation.
--
-- Changing a column's collation rebuilds the indexes that use it.
ALTER TABLE exposures
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN flag_key TYPE TEXT COLLATE "C",
    ALTER COLUMN variant TYPE TEXT COLLATE "C",
    ALTER COLUMN user_key TYPE TEXT COLLATE "C";
ALTER TABLE metric_events
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN name TYPE TEXT COLLATE "C",
    ALTER COLUMN user_key TYPE TEXT COLLATE "C";
ALTER TABLE exposure_users
    ALTER COLUMN flag_key TYPE TEXT COLLATE "C",
    ALTER COLUMN user_key TYPE TEXT COLLATE "C",
    ALTER COLUMN variant TYPE TEXT COLLATE "C",
    ALTER COLUMN vmin TYPE TEXT COLLATE "C",
    ALTER COLUMN vmax TYPE TEXT COLLATE "C";
