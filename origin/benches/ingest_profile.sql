-- Where the time of one 2,000-event batch goes inside PostgreSQL, statement
-- by statement (docs/performance.md, "Ingestion measured: 2026-12-03").
-- Run against a migrated, empty store schema, e.g.:
--   psql -c 'CREATE SCHEMA prof_ingest'
--   bunting audit verify --database-url \
--     'postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3Dprof_ingest'
--   psql -f origin/benches/ingest_profile.sql
-- It loads the state of the ingest bench halfway (50,000 exposures, their
-- rollup, 50,000 metric events; 32-hex user keys that look random), then
-- times each statement three times with EXPLAIN (ANALYZE, TIMING OFF), in a
-- transaction that is rolled back and vacuumed away, and three commits.
SET search_path = prof_ingest;
TRUNCATE exposures, metric_events, exposure_users;
-- mid-run state: 50,000 exposures and 50,000 metric events (as the bench halfway)
CREATE OR REPLACE FUNCTION pg_temp.ukey(i bigint) RETURNS text LANGUAGE sql AS
$$ SELECT lpad(to_hex(((i % 50000) * 2654435761) % 4294967296), 16, '0') || md5((i % 50000)::text)::varchar(16) $$;
INSERT INTO exposures SELECT 1, lpad(to_hex(1764000000000 + i/100), 12, '0') || md5('x' || i), 'flag-' || (i % 20), CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
  pg_temp.ukey(i), 1764000000000 + i/100, 42, CASE WHEN i % 3 = 0 THEN 'ramp' END, NULL, 'DE', 'mobile', 1764000000000
FROM generate_series(0, 49999) i;
INSERT INTO exposure_users SELECT env_id, flag_key, user_key, MIN(time_ms), (array_agg(variant ORDER BY time_ms, variant))[1], MIN(variant), MAX(variant) FROM exposures GROUP BY 1,2,3;
INSERT INTO metric_events SELECT 1, 'o-' || i, CASE WHEN i % 4 = 0 THEN 'purchase' ELSE 'page-view' END, pg_temp.ukey(i), CASE WHEN i % 4 = 0 THEN i * 0.01 END, 1764000000000 + i/100, 1764000000000, NULL
FROM generate_series(0, 49999) i;
VACUUM ANALYZE exposures; VACUUM ANALYZE metric_events; VACUUM ANALYZE exposure_users;

\set lo 60000
\set hi 61999
CREATE OR REPLACE FUNCTION pg_temp.ukey(i bigint) RETURNS text LANGUAGE sql AS
$$ SELECT lpad(to_hex(((i % 50000) * 2654435761) % 4294967296), 16, '0') || md5((i % 50000)::text)::varchar(16) $$;
SELECT json_agg(json_build_object('env_id',1,'id',lpad(to_hex(1764000000000 + i/100), 12, '0') || md5('x' || i),'flag_key','flag-' || (i % 20),'variant',CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
  'user_key',pg_temp.ukey(i),'time_ms',1764000000000 + i/100,'snapshot_version',42,'rule_id',CASE WHEN i % 3 = 0 THEN 'ramp' END,'reason',NULL,'country','DE','device_type','mobile','received_ms',1764000000000))::text AS j
FROM generate_series(:lo, :hi) i \gset
SELECT json_agg(json_build_object('env_id',1,'flag_key','flag-' || (i % 20),'user_key',pg_temp.ukey(i),'first_ms',1764000000000 + i/100,'variant',CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,'vmin',CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,'vmax',CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END) ORDER BY 'flag-' || (i % 20), pg_temp.ukey(i))::text AS u
FROM generate_series(:lo, :hi) i \gset
SELECT json_agg(json_build_object('env_id',1,'id','o-' || i,'name',CASE WHEN i % 4 = 0 THEN 'purchase' ELSE 'page-view' END,'user_key',pg_temp.ukey(i),'value',CASE WHEN i % 4 = 0 THEN i * 0.01 END,'time_ms',1764000000000 + i/100,'received_ms',1764000000000,'properties',NULL))::text AS m
FROM generate_series(:lo, :hi) i \gset
CREATE TEMP TABLE xa AS SELECT array_agg(env_id) a1, array_agg(id) a2, array_agg(flag_key) a3, array_agg(variant) a4, array_agg(user_key) a5, array_agg(time_ms) a6, array_agg(snapshot_version) a7, array_agg(rule_id) a8, array_agg(reason) a9, array_agg(country) a10, array_agg(device_type) a11, array_agg(received_ms) a12 FROM json_populate_recordset(NULL::exposures, :'j'::json);
CREATE TEMP TABLE ma AS SELECT array_agg(env_id) a1, array_agg(id) a2, array_agg(name) a3, array_agg(user_key) a4, array_agg(value) a5, array_agg(time_ms) a6, array_agg(received_ms) a7, array_agg(properties) a8 FROM json_populate_recordset(NULL::metric_events, :'m'::json);
\echo '=== 1 JSON text -> 2,000 exposure rows (json_populate_recordset), x3'
EXPLAIN (ANALYZE, TIMING OFF) SELECT count(*) FROM json_populate_recordset(NULL::exposures, :'j'::json);
EXPLAIN (ANALYZE, TIMING OFF) SELECT count(*) FROM json_populate_recordset(NULL::exposures, :'j'::json);
EXPLAIN (ANALYZE, TIMING OFF) SELECT count(*) FROM json_populate_recordset(NULL::exposures, :'j'::json);
\echo '=== 2 typed arrays -> 2,000 exposure rows (unnest), x3'
EXPLAIN (ANALYZE, TIMING OFF) SELECT count(*) FROM xa, unnest(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12);
EXPLAIN (ANALYZE, TIMING OFF) SELECT count(*) FROM xa, unnest(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12);
EXPLAIN (ANALYZE, TIMING OFF) SELECT count(*) FROM xa, unnest(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12);
\echo '=== 3 insert 2,000 exposures from arrays (heap + pkey + analysis index), x3'
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposures SELECT u.* FROM xa, unnest(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12) u ON CONFLICT DO NOTHING; ROLLBACK;
VACUUM exposures;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposures SELECT u.* FROM xa, unnest(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12) u ON CONFLICT DO NOTHING; ROLLBACK;
VACUUM exposures;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposures SELECT u.* FROM xa, unnest(a1,a2,a3,a4,a5,a6,a7,a8,a9,a10,a11,a12) u ON CONFLICT DO NOTHING; ROLLBACK;
VACUUM exposures;
\echo '=== 4 insert 2,000 metric events from arrays, x3'
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO metric_events SELECT u.* FROM ma, unnest(a1,a2,a3,a4,a5,a6,a7,a8) u ON CONFLICT DO NOTHING; ROLLBACK;
VACUUM metric_events;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO metric_events SELECT u.* FROM ma, unnest(a1,a2,a3,a4,a5,a6,a7,a8) u ON CONFLICT DO NOTHING; ROLLBACK;
VACUUM metric_events;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO metric_events SELECT u.* FROM ma, unnest(a1,a2,a3,a4,a5,a6,a7,a8) u ON CONFLICT DO NOTHING; ROLLBACK;
VACUUM metric_events;
\echo '=== 5 rollup merge of 2,000 returning users (nothing changes: probes only), x3'
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposure_users SELECT * FROM json_populate_recordset(NULL::exposure_users, :'u'::json) ON CONFLICT (env_id, flag_key, user_key) DO UPDATE SET first_ms = LEAST(exposure_users.first_ms, excluded.first_ms) WHERE excluded.first_ms < exposure_users.first_ms OR excluded.vmin < exposure_users.vmin OR excluded.vmax > exposure_users.vmax; ROLLBACK;
VACUUM exposure_users;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposure_users SELECT * FROM json_populate_recordset(NULL::exposure_users, :'u'::json) ON CONFLICT (env_id, flag_key, user_key) DO UPDATE SET first_ms = LEAST(exposure_users.first_ms, excluded.first_ms) WHERE excluded.first_ms < exposure_users.first_ms OR excluded.vmin < exposure_users.vmin OR excluded.vmax > exposure_users.vmax; ROLLBACK;
VACUUM exposure_users;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposure_users SELECT * FROM json_populate_recordset(NULL::exposure_users, :'u'::json) ON CONFLICT (env_id, flag_key, user_key) DO UPDATE SET first_ms = LEAST(exposure_users.first_ms, excluded.first_ms) WHERE excluded.first_ms < exposure_users.first_ms OR excluded.vmin < exposure_users.vmin OR excluded.vmax > exposure_users.vmax; ROLLBACK;
VACUUM exposure_users;
\echo '=== 6 rollup merge of 2,000 new users (heap + pkey + first_ms index), x3'
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposure_users SELECT env_id, flag_key, 'n' || user_key, first_ms, variant, vmin, vmax FROM json_populate_recordset(NULL::exposure_users, :'u'::json) ON CONFLICT (env_id, flag_key, user_key) DO NOTHING; ROLLBACK;
VACUUM exposure_users;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposure_users SELECT env_id, flag_key, 'n' || user_key, first_ms, variant, vmin, vmax FROM json_populate_recordset(NULL::exposure_users, :'u'::json) ON CONFLICT (env_id, flag_key, user_key) DO NOTHING; ROLLBACK;
VACUUM exposure_users;
BEGIN; EXPLAIN (ANALYZE, TIMING OFF) INSERT INTO exposure_users SELECT env_id, flag_key, 'n' || user_key, first_ms, variant, vmin, vmax FROM json_populate_recordset(NULL::exposure_users, :'u'::json) ON CONFLICT (env_id, flag_key, user_key) DO NOTHING; ROLLBACK;
VACUUM exposure_users;
\echo '=== 7 commit (WAL flush + fsync) of a one-row transaction, x3'
BEGIN; INSERT INTO metric_events VALUES (1, 'probe-' || clock_timestamp(), 'x', 'u', NULL, 0, 0, NULL);
\timing on
COMMIT;
\timing off
BEGIN; INSERT INTO metric_events VALUES (1, 'probe-' || clock_timestamp(), 'x', 'u', NULL, 0, 0, NULL);
\timing on
COMMIT;
\timing off
BEGIN; INSERT INTO metric_events VALUES (1, 'probe-' || clock_timestamp(), 'x', 'u', NULL, 0, 0, NULL);
\timing on
COMMIT;
\timing off
