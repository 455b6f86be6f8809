//! Event ingestion throughput, on SQLite (a file in a temporary directory)
//! and PostgreSQL (a fresh schema per run): events/s straight into the
//! store and through `POST /api/v1/events` (the real router on a loopback
//! port, several concurrent clients), medians over a few runs.
//!
//! ```sh
//! cargo bench -p bunting-origin --bench ingest
//! BENCH_EVENTS=1000000 BENCH_BATCH=5000 BENCH_CLIENTS=8 BENCH_RUNS=5 cargo bench -p bunting-origin --bench ingest
//! ```
//!
//! `BUNTING_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/test`)
//! names the PostgreSQL database; `BENCH_BACKENDS=sqlite` or `postgres`
//! runs one; `BENCH_MODES=http` (or `direct`) one path;
//! `BENCH_WRITERS` sets the pipeline's writer tasks (default: the
//! pipeline's, four on PostgreSQL); `BENCH_USERS` sets the distinct users (default 50,000);
//! `BENCH_SETUP_SQL` is run on each fresh PostgreSQL schema before the
//! timed part (to compare schema variants with one binary, e.g.
//! `DROP INDEX exposure_users_first`). The
//! store path uses `BENCH_CLIENTS` tasks on PostgreSQL and
//! one on SQLite (a single writer). Events are half exposures, half metric events (alternate
//! batches), all new (each run starts from empty tables); every run checks
//! that every event was stored. Each run also prints the CPU time the bench
//! process (clients, server, pipeline) and the PostgreSQL processes spent per
//! event (Linux `/proc`; other processes' load is not counted) and, on
//! PostgreSQL, the WAL written per event (the server's insert position
//! before and after the timed part; the whole cluster's). Results are
//! in `docs/performance.md`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use bunting_origin::api::{AppState, ServeConfig, router};
use bunting_origin::store::{Actor, EventBatch, Exposure, MetricEvent, Store};
use serde_json::json;
use sqlx::Connection;

/// The allocator the `bunting` binary uses (the bench runs the server in
/// this process).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECRET: &str = "bench-secret";
const ENV: &str = "acme/web/production";
/// The id of `ENV`: the first environment of a fresh store.
const ENV_ID: i64 = 1;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

struct Config {
    events: usize,
    batch: usize,
    clients: usize,
    runs: usize,
    pg: String,
}

/// A fresh database for one run; dropped (file removed, schema dropped)
/// by [`Db::cleanup`].
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres { admin: String, schema: String },
}

impl Db {
    async fn open(backend: &str, cfg: &Config, run: usize) -> (Store, Db) {
        let (store, db) = Db::create(backend, cfg, run).await;
        // Events are stored for environments that exist.
        let a = Actor::new("bench");
        let org = store.create_org(&a, "acme", "Acme").await.unwrap();
        let p = store
            .create_project(&a, org.id, "web", "Web")
            .await
            .unwrap();
        let env = store
            .create_environment(&a, p.id, "production", "Production")
            .await
            .unwrap();
        assert_eq!(env.id, ENV_ID);
        if let (Db::Postgres { .. }, Ok(sql)) = (&db, std::env::var("BENCH_SETUP_SQL")) {
            sqlx::raw_sql(&sql).execute(store.pool()).await.unwrap();
        }
        (store, db)
    }

    async fn create(backend: &str, cfg: &Config, run: usize) -> (Store, Db) {
        let tag = format!("{}_{}_{run}", std::process::id(), now_ms() % 1_000_000);
        if backend == "sqlite" {
            let dir = std::env::temp_dir().join(format!("bunting-ingest-bench-{tag}"));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("bench.db");
            let store = Store::open(&format!("sqlite://{}", file.display()))
                .await
                .unwrap();
            (store, Db::Sqlite(dir))
        } else {
            sqlx::any::install_default_drivers();
            let schema = format!("bench_{tag}");
            let mut c = sqlx::AnyConnection::connect(&cfg.pg).await.unwrap();
            sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut c)
                .await
                .unwrap();
            let sep = if cfg.pg.contains('?') { '&' } else { '?' };
            let url = format!("{}{sep}options=-c%20search_path%3D{schema}", cfg.pg);
            let store = Store::open(&url).await.unwrap();
            (
                store,
                Db::Postgres {
                    admin: cfg.pg.clone(),
                    schema,
                },
            )
        }
    }

    async fn cleanup(self, store: Store) {
        store.pool().close().await;
        match self {
            Db::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Db::Postgres { admin, schema } => {
                let mut c = sqlx::AnyConnection::connect(&admin).await.unwrap();
                sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Distinct users (`BENCH_USERS`, default 50,000): when 20 divides it, each
/// user sees one flag and one variant (both follow the index), so with 100,000
/// exposures each (user, flag) pair is exposed twice by default; fewer
/// users mean more returning exposures, which leave the per-user rollup
/// untouched (an index probe each).
fn users() -> usize {
    env_num("BENCH_USERS", 50_000).max(20)
}

/// A user key as the edge sends it: 32 hex digits that look random (the
/// edge's keyed SipHash), so analysis-index inserts land at random pages.
fn user(i: usize) -> String {
    let h = (i as u64 % users() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{h:016x}{:016x}", h.rotate_left(29) ^ 0x5851_F42D_4C95_7F2D)
}

/// Batch `b` of `size` events: exposures for even `b`, metric events for
/// odd ones; every event distinct, [`users`] users, 20 flags, times rising
/// with `i` (100 events per millisecond), as edge batches arrive roughly in
/// time order.
fn batch(b: usize, size: usize, t: i64) -> EventBatch {
    let first = b * size;
    if b.is_multiple_of(2) {
        EventBatch::Exposures(
            (first..first + size)
                .map(|i| Exposure {
                    env_id: ENV_ID,
                    id: String::new(), // the edge sends none: the origin derives it
                    flag_key: format!("flag-{}", i % 20),
                    variant: if i.is_multiple_of(2) { "a" } else { "b" }.into(),
                    user_key: user(i),
                    time_ms: t + (i / 100) as i64,
                    snapshot_version: Some(42),
                    rule_id: i.is_multiple_of(3).then(|| "ramp".to_string()),
                    reason: None,
                    country: Some("DE".into()),
                    device_type: Some("mobile".into()),
                    received_ms: t,
                })
                .collect(),
        )
    } else {
        EventBatch::Metrics(
            (first..first + size)
                .map(|i| MetricEvent {
                    env_id: ENV_ID,
                    id: format!("o-{i}"),
                    name: if i.is_multiple_of(4) {
                        "purchase"
                    } else {
                        "page-view"
                    }
                    .into(),
                    user_key: user(i),
                    value: i.is_multiple_of(4).then_some(i as f64 * 0.01),
                    time_ms: t + (i / 100) as i64,
                    received_ms: t,
                    properties: None,
                })
                .collect(),
        )
    }
}

/// The edge's body for a batch (`edge-worker/src/ingest.rs`).
fn body(batch: &EventBatch) -> Bytes {
    let v = match batch {
        EventBatch::Exposures(list) => {
            json!({"kind": "exposures", "exposures": list.iter().map(|e| json!({
            "flag": e.flag_key, "variant": e.variant, "ruleId": e.rule_id,
            "bucketingKeyHash": e.user_key, "environment": ENV,
            "snapshotVersion": e.snapshot_version, "time": e.time_ms,
            "country": e.country, "deviceType": e.device_type,
        })).collect::<Vec<_>>()})
        }
        EventBatch::Metrics(list) => json!({"kind": "events", "environment": ENV,
            "events": list.iter().map(|e| json!({
            "name": e.name, "targetingKeyHash": e.user_key, "value": e.value,
            "timestamp": e.time_ms, "receivedAt": e.received_ms, "id": e.id,
        })).collect::<Vec<_>>()}),
    };
    Bytes::from(v.to_string())
}

async fn check(store: &Store, n: usize) {
    let stored = store.count_exposures(ENV_ID).await.unwrap()
        + store.count_metric_events(ENV_ID).await.unwrap();
    assert_eq!(stored as usize, n, "every event stored");
}

/// Straight into the store: `clients` tasks, one transaction per batch.
async fn direct(store: &Store, batches: Arc<Vec<EventBatch>>, clients: usize) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (store, batches, next) = (store.clone(), batches.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = batches.get(i) else { break };
                store
                    .insert_event_batches(std::slice::from_ref(b))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// CPU seconds (user + system) of this process and of every process named
/// `postgres`, from `/proc` (zeros where it cannot be read).
fn cpu_seconds() -> (f64, f64) {
    // Fields 14 and 15 of /proc/<pid>/stat (after the parenthesized name).
    fn ticks(stat: &str) -> Option<(String, u64)> {
        let (head, tail) = stat.rsplit_once(')')?;
        let name = head.split_once('(')?.1.to_string();
        let f: Vec<&str> = tail.split_whitespace().collect();
        Some((
            name,
            f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        ))
    }
    let hz = 100.0; // USER_HZ on Linux
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .map_or(0, |t| t.1);
    let mut pg = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            if let Some((name, t)) = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| ticks(&s))
                && name == "postgres"
            {
                pg += t;
            }
        }
    }
    (own as f64 / hz, pg as f64 / hz)
}

/// The server's WAL insert position in bytes (PostgreSQL; `None` on
/// SQLite): the difference over a run is the WAL it wrote (the whole
/// cluster's, like the CPU counters).
async fn wal_bytes(store: &Store) -> Option<i64> {
    use sqlx::Row;
    if store.backend() != bunting_origin::store::Backend::Postgres {
        return None;
    }
    let row = sqlx::query(
        "SELECT CAST(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0') AS BIGINT) AS b",
    )
    .fetch_one(store.pool())
    .await
    .ok()?;
    row.try_get("b").ok()
}

/// Through HTTP: `clients` connections posting the edge's bodies.
async fn http(store: &Store, bodies: Arc<Vec<Bytes>>, clients: usize) -> Duration {
    let mut state = AppState::new(
        store.clone(),
        ServeConfig {
            ingest_secret: Some(SECRET.into()),
            ..ServeConfig::default()
        },
    );
    let writers = env_num("BENCH_WRITERS", 0);
    if writers > 0 {
        state.ingest = bunting_origin::ingest::Ingest::new(
            store.clone(),
            state.metrics.clone(),
            bunting_origin::ingest::IngestOptions {
                writers,
                ..Default::default()
            },
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/events", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (bodies, next, url) = (bodies.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = bodies.get(i) else { break };
                loop {
                    let r = client
                        .post(&url)
                        .bearer_auth(SECRET)
                        .header("content-type", "application/json")
                        .body(b.clone())
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        202 => break,
                        429 => tokio::time::sleep(Duration::from_millis(50)).await,
                        s => panic!("HTTP {s}: {}", r.text().await.unwrap_or_default()),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    server.abort();
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cfg = Config {
        events: env_num("BENCH_EVENTS", 200_000),
        batch: env_num("BENCH_BATCH", 2_000),
        clients: env_num("BENCH_CLIENTS", 4),
        runs: env_num("BENCH_RUNS", 3),
        pg: std::env::var("BUNTING_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
    };
    let backends: Vec<String> = std::env::var("BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let t = now_ms();
        let n_batches = cfg.events.div_ceil(cfg.batch);
        let bodies: Arc<Vec<Bytes>> =
            Arc::new((0..n_batches).map(|b| body(&batch(b, cfg.batch, t))).collect());
        let n = n_batches * cfg.batch;
        let mb = bodies.iter().map(Bytes::len).sum::<usize>() as f64 / 1e6;
        println!(
            "event ingestion: {n} events in batches of {} ({mb:.1} MB of JSON), {} clients, {} runs, {} cores",
            cfg.batch,
            cfg.clients,
            cfg.runs,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        // CPU cost of validation alone (one core): parse, check, derive ids.
        let options = bunting_origin::ingest::IngestOptions::default();
        let start = Instant::now();
        for b in bodies.iter() {
            bunting_origin::ingest::parse(b, now_ms(), &options).unwrap();
        }
        let took = start.elapsed();
        println!(
            "  parse + validate only (one core): {took:.2?}, {:.0} events/s",
            n as f64 / took.as_secs_f64()
        );
        // The store path inserts exactly the rows the HTTP path does
        // (exposure ids derived as the origin derives them).
        let batches: Arc<Vec<EventBatch>> = Arc::new(
            bodies
                .iter()
                .map(|b| {
                    let parsed = bunting_origin::ingest::parse(b, now_ms(), &options).unwrap();
                    parsed
                        .resolve(&BTreeMap::from([(ENV.to_string(), ENV_ID)]))
                        .unwrap()
                })
                .collect(),
        );
        let mut results = Vec::new();
        for backend in &backends {
            let modes = std::env::var("BENCH_MODES").unwrap_or_else(|_| "direct,http".into());
            for mode in ["direct", "http"] {
                if !modes.split(',').any(|m| m == mode) {
                    continue;
                }
                let mut rates = Vec::new();
                for run in 0..cfg.runs {
                    let (store, db) = Db::open(backend, &cfg, run).await;
                    let wal0 = wal_bytes(&store).await;
                    let cpu0 = cpu_seconds();
                    let took = if mode == "direct" {
                        // SQLite has one writer at a time (more tasks only
                        // queue on its lock, past its 5 s busy timeout with
                        // big batches); the HTTP path has one writer there too.
                        let tasks = if backend == "sqlite" { 1 } else { cfg.clients };
                        direct(&store, batches.clone(), tasks).await
                    } else {
                        http(&store, bodies.clone(), cfg.clients).await
                    };
                    let cpu1 = cpu_seconds();
                    let wal = match (wal0, wal_bytes(&store).await) {
                        (Some(a), Some(b)) => format!(", WAL {:.0} B", (b - a) as f64 / n as f64),
                        _ => String::new(),
                    };
                    check(&store, n).await;
                    db.cleanup(store).await;
                    let rate = n as f64 / took.as_secs_f64();
                    let per = |a: f64, b: f64| (b - a) * 1e6 / n as f64;
                    println!(
                        "  {backend:8} {mode:6} run {run}: {took:>10.2?}  {rate:>10.0} events/s  \
                         per event: CPU bench {:.1} µs, postgres {:.1} µs{wal}",
                        per(cpu0.0, cpu1.0),
                        per(cpu0.1, cpu1.1)
                    );
                    rates.push(rate);
                }
                let m = median(rates);
                results.push((backend.clone(), mode, m));
            }
        }
        println!("\nmedians:");
        for (backend, mode, m) in &results {
            println!("  {backend:8} {mode:6} {m:>10.0} events/s");
        }
        let get = |b: &str, m: &str| {
            results
                .iter()
                .find(|(x, y, _)| x == b && *y == m)
                .map(|r| r.2)
        };
        for mode in ["direct", "http"] {
            if let (Some(pg), Some(lite)) = (get("postgres", mode), get("sqlite", mode)) {
                println!("  {mode}: PostgreSQL / SQLite = {:.2}", pg / lite);
            }
        }
        for b in &backends {
            if let (Some(h), Some(d)) = (get(b, "http"), get(b, "direct")) {
                println!("  {b}: HTTP / direct = {:.2}", h / d);
            }
        }
        if let Some(pg) = get("postgres", "http") {
            let verdict = if pg >= 200_000.0 { "PASS" } else { "MISS" };
            println!("  goal >= 200,000 events/s on PostgreSQL over HTTP: {verdict} ({pg:.0})");
        }
    });
}
