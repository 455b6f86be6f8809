//! Experiment analysis speed: [`Store::experiment_data`] over a large
//! experiment, on PostgreSQL (a fresh schema) and SQLite (a file in a
//! temporary directory). The data is generated in the database (`INSERT …
//! SELECT` from `generate_series` / a recursive CTE): `BENCH_USERS` users
//! (default 2,000,000 on PostgreSQL, 200,000 on SQLite) with 5 exposures
//! each on two arms, 1 % of them exposed to both arms, and
//! `BENCH_EVENTS` purchase events (default: as many as users), a twentieth
//! of them before the user's first exposure (CUPED pre-period). After
//! loading (which bypasses ingestion): `Store::rebuild_exposure_users` (the
//! per-user rollup ingestion maintains), `VACUUM ANALYZE` (PostgreSQL) /
//! `ANALYZE` (SQLite), then the median of `BENCH_RUNS` (default 3) analyses
//! of two metrics (a conversion and a capped mean, with the daily series),
//! and once the same analysis over the raw exposures (`BENCH_RAW=0` skips
//! it) for the ratio. On PostgreSQL, then, incremental looks
//! (`AggregateOptions::incremental`): the first, one with nothing new, and
//! one after each of `BENCH_NEW` (default `10000,100000`) rows stored
//! through ingestion, each checked against the raw path.
//!
//! ```sh
//! cargo bench -p bunting-origin --bench experiment
//! BENCH_BACKENDS=postgres BENCH_USERS=200000 cargo bench -p bunting-origin --bench experiment
//! ```
//!
//! `BUNTING_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`)
//! names the PostgreSQL database; `BENCH_BACKENDS=sqlite` or `postgres`
//! runs one. `BENCH_SETUP_SQL` is run on the fresh PostgreSQL schema before
//! the data is loaded (to compare schema variants with one binary).
//! `BENCH_SCHEMA=name` keeps the PostgreSQL schema under that name and, if
//! it exists, reuses its data (no load: to compare builds on the same data;
//! with `BENCH_NEW=` empty, so that no look adds rows). Results
//! are in `docs/performance.md`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bunting_origin::model::experiment::ExperimentRecord;
use bunting_origin::model::experiment::ExperimentSpec;
use bunting_origin::model::metric::{MetricKind, MetricSpec};
use bunting_origin::store::aggregate::{AggregateOptions, ExperimentData};
use bunting_origin::store::{Actor, Exposure, FlagSpec, MetricEvent, Store};
use sqlx::{Connection, Row};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Milliseconds between consecutive exposures of the generated data.
const STEP_MS: i64 = 50;
const EXPOSURES_PER_USER: i64 = 5;

fn metrics() -> Vec<MetricSpec> {
    let mut revenue = MetricSpec::conversion("revenue", "purchase");
    revenue.kind = MetricKind::Mean;
    revenue.cap = Some(80.0);
    vec![MetricSpec::conversion("purchased", "purchase"), revenue]
}

/// Rows of environment `env` (its id). Exposures: row `g` (0-based) is user
/// `g % users`, at `t0 + g·STEP`; the
/// arm is the user's parity, and every 100th user's last exposure is to the
/// other arm. Events: event `j` is user `(j·7919) % users`, `j % 10` hours
/// after their first exposure (a day before it for every 20th), value
/// `j % 100`.
fn load_sql(backend: &str, users: i64, events: i64, t0: i64, env: i64) -> Vec<String> {
    let n = users * EXPOSURES_PER_USER;
    let (series_x, series_e, key) = if backend == "postgres" {
        (
            format!("generate_series(0::bigint, {n} - 1) AS s(g)"),
            format!("generate_series(0::bigint, {events} - 1) AS s(g)"),
            "md5(({u})::text)",
        )
    } else {
        (
            format!(
                "(WITH RECURSIVE r(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM r WHERE g < {n} - 1) SELECT g FROM r) s"
            ),
            format!(
                "(WITH RECURSIVE r(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM r WHERE g < {events} - 1) SELECT g FROM r) s"
            ),
            "printf('%016x%016x', ({u}) * 2654435761, ({u}) * 40503)",
        )
    };
    let ukey = |u: &str| key.replace("{u}", u);
    let xu = format!("(g % {users})");
    let eu = format!("((g * 7919) % {users})");
    vec![
        format!(
            "INSERT INTO exposures (env_id, id, flag_key, variant, user_key, time_ms, received_ms) \
             SELECT {env}, 'x' || g, 'checkout', \
               CASE WHEN ({xu} % 2 = 0) <> ({xu} % 100 = 1 AND g >= {users} * 4) THEN 'off' ELSE 'on' END, \
               {}, {t0} + g * {STEP_MS}, {t0} + g * {STEP_MS} FROM {series_x}",
            ukey(&xu)
        ),
        format!(
            "INSERT INTO metric_events (env_id, id, name, user_key, value, time_ms, received_ms) \
             SELECT {env}, 'e' || g, 'purchase', {}, g % 100, \
               {t0} + {eu} * {STEP_MS} + CASE WHEN g % 20 = 0 THEN -86400000 ELSE (g % 10) * 3600000 END, \
               {t0} FROM {series_e}",
            ukey(&eu)
        ),
    ]
}

/// Creates the bench's experiment in `store` and loads its data (see the
/// module documentation); returns the running experiment.
async fn load(store: &Store, backend: &str, users: i64, events: i64) -> ExperimentRecord {
    let ana = Actor::new("bench");
    let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    let p = store
        .create_project(&ana, org.id, "web", "Web")
        .await
        .unwrap();
    let env = store
        .create_environment(&ana, p.id, "production", "Production")
        .await
        .unwrap();
    store
        .create_flag(&ana, p.id, &FlagSpec::boolean("checkout"))
        .await
        .unwrap();
    for m in metrics() {
        store.create_metric(&ana, p.id, &m).await.unwrap();
    }
    let mut spec = ExperimentSpec::new("checkout-test", "checkout", "off", "purchased");
    spec.secondary_metrics = vec!["revenue".into()];
    let e = store.create_experiment(&ana, env.id, &spec).await.unwrap();
    let e = store.start_experiment(&ana, e.id, e.version).await.unwrap();
    // Exposures start after the experiment did.
    let t0 = now_ms() + 1_000;

    if let (true, Ok(sql)) = (backend == "postgres", std::env::var("BENCH_SETUP_SQL")) {
        sqlx::raw_sql(&sql).execute(store.pool()).await.unwrap();
    }
    let load = Instant::now();
    for sql in load_sql(backend, users, events, t0, env.id) {
        sqlx::raw_sql(&sql).execute(store.pool()).await.unwrap();
    }
    // The in-database load bypasses ingestion, which maintains the
    // per-user rollup: build it the way an operator would after a bulk load.
    let loaded = load.elapsed().as_secs_f64();
    let rollup = Instant::now();
    let rollup_rows = store.rebuild_exposure_users().await.unwrap();
    let rollup_s = rollup.elapsed().as_secs_f64();
    let analyze: &[&str] = if backend == "postgres" {
        &[
            "VACUUM ANALYZE exposures",
            "VACUUM ANALYZE metric_events",
            "VACUUM ANALYZE exposure_users",
        ]
    } else {
        &["ANALYZE"]
    };
    for sql in analyze {
        sqlx::raw_sql(sql).execute(store.pool()).await.unwrap();
    }
    let exposures = store.count_exposures(env.id).await.unwrap();
    let metric_events = store.count_metric_events(env.id).await.unwrap();
    println!(
        "{backend}: loaded {exposures} exposures ({users} users) and {metric_events} metric events in {loaded:.1} s; \
         per-user rollup ({rollup_rows} rows) rebuilt in {rollup_s:.1} s"
    );

    e
}

async fn run(backend: &str, pg: &str) {
    let default_users = if backend == "postgres" {
        2_000_000
    } else {
        200_000
    };
    let users = env_num("BENCH_USERS", default_users) as i64;
    let events = env_num("BENCH_EVENTS", users as usize) as i64;
    let runs = env_num("BENCH_RUNS", 3).max(1);
    let tag = format!("{}_{}", std::process::id(), now_ms() % 1_000_000);
    // `BENCH_SCHEMA`: a named PostgreSQL schema, kept afterwards; when it
    // already holds a loaded bench, its data is reused (no load, no rollup
    // rebuild), so that builds can be compared on the same data.
    let kept = std::env::var("BENCH_SCHEMA")
        .ok()
        .filter(|_| backend == "postgres");
    let mut reused = false;
    let (store, cleanup): (Store, Box<dyn FnOnce() -> String>) = if backend == "postgres" {
        sqlx::any::install_default_drivers();
        let schema = kept.clone().unwrap_or_else(|| format!("bench_exp_{tag}"));
        let mut c = sqlx::AnyConnection::connect(pg).await.unwrap();
        reused = sqlx::query("SELECT 1 FROM pg_namespace WHERE nspname = $1")
            .bind(schema.clone())
            .fetch_optional(&mut c)
            .await
            .unwrap()
            .is_some();
        if !reused {
            sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
        let sep = if pg.contains('?') { '&' } else { '?' };
        let url = format!("{pg}{sep}options=-c%20search_path%3D{schema}");
        let drop = if kept.is_some() {
            String::new()
        } else {
            format!("DROP SCHEMA {schema} CASCADE")
        };
        (Store::open(&url).await.unwrap(), Box::new(move || drop))
    } else {
        let dir = std::env::temp_dir().join(format!("bunting-exp-bench-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bench.db");
        let store = Store::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        (
            store,
            Box::new(move || {
                let _ = std::fs::remove_dir_all(&dir);
                String::new()
            }),
        )
    };

    let e = if reused {
        let e = store.running_experiments().await.unwrap().remove(0);
        // Every look of this run starts cold.
        store.drop_cached_looks(None).await.unwrap();
        println!(
            "{backend}: reusing the data of schema {}",
            kept.as_deref().unwrap_or("")
        );
        e
    } else {
        load(&store, backend, users, events).await
    };
    let env_id = e.environment_id;
    let exposures = store.count_exposures(env_id).await.unwrap();

    let options = AggregateOptions {
        series: true,
        ..AggregateOptions::default()
    };
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        let data = store
            .experiment_data(&e, &metrics(), &options)
            .await
            .unwrap();
        times.push(start.elapsed().as_secs_f64());
        last = Some(data);
    }
    let data = last.unwrap();
    // The same analysis over every raw exposure (the reference path, what
    // the analysis did before the rollup), once, for the ratio.
    if env_num("BENCH_RAW", 1) == 1 {
        let raw = AggregateOptions {
            raw: true,
            ..options
        };
        let start = Instant::now();
        let r = store.experiment_data(&e, &metrics(), &raw).await.unwrap();
        let raw_s = start.elapsed().as_secs_f64();
        assert_eq!(
            r.arms.iter().map(|a| a.users).collect::<Vec<_>>(),
            data.arms.iter().map(|a| a.users).collect::<Vec<_>>()
        );
        assert_eq!(r.multi_arm_users, data.multi_arm_users);
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{backend}: raw-exposure analysis (reference path) {raw_s:.3} s = {:.1}x the rollup's median",
            raw_s / sorted[sorted.len() / 2]
        );
    }
    let total: u64 = data.arms.iter().map(|a| a.users).sum();
    assert_eq!(total, users as u64, "every user in one arm");
    // Users u with u % 100 == 1.
    assert_eq!(data.multi_arm_users, (users as u64 + 98) / 100);
    times.sort_by(f64::total_cmp);
    println!(
        "{backend}: experiment_data (2 metrics + daily series) over {exposures} exposures: \
         median {:.3} s of {runs} (min {:.3} s, max {:.3} s); arms {:?}, multi-arm users {}, {} days",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        data.arms
            .iter()
            .map(|a| (
                a.variant.as_str(),
                a.users,
                a.metrics["purchased"].conversions
            ))
            .collect::<Vec<_>>(),
        data.multi_arm_users,
        data.series.len(),
    );

    if backend == "postgres" {
        incremental_looks(&store, &e, env_id, &options).await;
    }

    store.pool().close().await;
    let drop = cleanup();
    if !drop.is_empty() {
        let mut c = sqlx::AnyConnection::connect(pg).await.unwrap();
        sqlx::raw_sql(&drop).execute(&mut c).await.unwrap();
    }
}

/// Incremental looks (`AggregateOptions::incremental`, PostgreSQL): the
/// first (a full aggregation that stores its sums), one with nothing new,
/// then one after each of `BENCH_NEW` (default 10,000 and 100,000) new rows
/// stored through the normal ingestion path (`insert_exposures`,
/// `insert_metric_events`, batches of 2,000): a quarter exposures of new
/// users, a quarter later exposures of existing users, half purchases of
/// existing users. Each look is checked against the raw path (`BENCH_RAW=0`:
/// against the full rollup aggregation).
async fn incremental_looks(
    store: &Store,
    e: &ExperimentRecord,
    env_id: i64,
    options: &AggregateOptions,
) {
    let cached = AggregateOptions {
        incremental: true,
        ..*options
    };
    let reference = AggregateOptions {
        raw: env_num("BENCH_RAW", 1) == 1,
        ..*options
    };
    let check = |what: String, data: ExperimentData| async move {
        let r = store
            .experiment_data(e, &metrics(), &reference)
            .await
            .unwrap();
        assert_eq!(data, r, "{what}");
    };
    let look = |what: &'static str| async move {
        let start = Instant::now();
        let data = store.experiment_data(e, &metrics(), &cached).await.unwrap();
        let s = start.elapsed().as_secs_f64();
        println!("postgres: incremental look, {what}: {s:.3} s");
        data
    };
    let data = look("first (full aggregation, stores its sums)").await;
    check("first".into(), data).await;
    let data = look("nothing new").await;
    check("nothing new".into(), data).await;

    let sizes: Vec<usize> = std::env::var("BENCH_NEW")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|n| n.trim().replace('_', "").parse().ok())
        .collect();
    for (round, new) in sizes.into_iter().enumerate() {
        let existing = sqlx::query(
            "SELECT user_key, first_ms FROM exposure_users WHERE env_id = $1 \
             AND flag_key = 'checkout' ORDER BY user_key LIMIT $2 OFFSET $3",
        )
        .bind(env_id)
        .bind((new / 2) as i64)
        .bind((round * 7_919) as i64)
        .fetch_all(store.pool())
        .await
        .unwrap();
        let existing: Vec<(String, i64)> = existing
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
            .collect();
        let at = now_ms();
        let exposure = |id: String, user: String, variant: &str, t: i64| Exposure {
            env_id,
            id,
            flag_key: "checkout".into(),
            variant: variant.into(),
            user_key: user,
            time_ms: t,
            snapshot_version: None,
            rule_id: None,
            reason: None,
            country: None,
            device_type: None,
            received_ms: t,
        };
        let mut exposures: Vec<Exposure> = (0..new / 4)
            .map(|i| {
                let variant = if i % 2 == 0 { "off" } else { "on" };
                exposure(
                    format!("n{round}-{i}"),
                    format!("new-{round}-{i}"),
                    variant,
                    at + i as i64,
                )
            })
            .collect();
        exposures.extend(
            existing
                .iter()
                .take(new / 4)
                .enumerate()
                .map(|(i, (u, t))| exposure(format!("r{round}-{i}"), u.clone(), "off", t + 60_000)),
        );
        let events: Vec<MetricEvent> = existing
            .iter()
            .cycle()
            .take(new - exposures.len())
            .enumerate()
            .map(|(i, (u, t))| MetricEvent {
                env_id,
                id: format!("p{round}-{i}"),
                name: "purchase".into(),
                user_key: u.clone(),
                value: Some((i % 100) as f64),
                time_ms: t + 3_600_000,
                received_ms: at,
                properties: None,
            })
            .collect();
        let ingest = Instant::now();
        for chunk in exposures.chunks(2_000) {
            store.insert_exposures(chunk).await.unwrap();
        }
        for chunk in events.chunks(2_000) {
            store.insert_metric_events(chunk).await.unwrap();
        }
        println!(
            "postgres: stored {} exposures and {} metric events through ingestion in {:.1} s",
            exposures.len(),
            events.len(),
            ingest.elapsed().as_secs_f64()
        );
        let start = Instant::now();
        let data = store.experiment_data(e, &metrics(), &cached).await.unwrap();
        println!(
            "postgres: incremental look after {new} new rows: {:.3} s",
            start.elapsed().as_secs_f64()
        );
        check(format!("after {new} new rows"), data).await;
        let data = look("nothing new").await;
        check("nothing new again".into(), data).await;
    }
}

fn main() {
    let pg = std::env::var("BUNTING_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    let rt = tokio::runtime::Runtime::new().unwrap();
    for b in backends.split(',') {
        rt.block_on(run(b.trim(), &pg));
    }
}
