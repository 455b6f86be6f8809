//! Migration 0009 on a database that has events (SQLite file and
//! PostgreSQL): exposures and metric events stored under the edge's name of
//! an environment that exists move to its id, the rollup is rebuilt from
//! them, and rows of names no environment has (deleted tenants') are not
//! carried over.

use bunting_origin::store::Store;
use sqlx::Connection;

use crate::common;

/// The migrations before 0009, as `Store::open` applied them.
const BEFORE: [(i64, &str, &str, &str); 8] = [
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "access",
        include_str!("../../migrations/sqlite/0002_access.sql"),
        include_str!("../../migrations/postgres/0002_access.sql"),
    ),
    (
        3,
        "publish",
        include_str!("../../migrations/sqlite/0003_publish.sql"),
        include_str!("../../migrations/postgres/0003_publish.sql"),
    ),
    (
        4,
        "events",
        include_str!("../../migrations/sqlite/0004_events.sql"),
        include_str!("../../migrations/postgres/0004_events.sql"),
    ),
    (
        5,
        "experiments",
        include_str!("../../migrations/sqlite/0005_experiments.sql"),
        include_str!("../../migrations/postgres/0005_experiments.sql"),
    ),
    (
        6,
        "analysis_indexes",
        include_str!("../../migrations/sqlite/0006_analysis_indexes.sql"),
        include_str!("../../migrations/postgres/0006_analysis_indexes.sql"),
    ),
    (
        7,
        "exposure_users",
        include_str!("../../migrations/sqlite/0007_exposure_users.sql"),
        include_str!("../../migrations/postgres/0007_exposure_users.sql"),
    ),
    (
        8,
        "guarded_rollouts",
        include_str!("../../migrations/sqlite/0008_guarded_rollouts.sql"),
        include_str!("../../migrations/postgres/0008_guarded_rollouts.sql"),
    ),
];

/// Brings the database at `url` to migration 8 and stores, under names,
/// 3 exposures (2 users) and 2 metric events of `acme/web/production`,
/// and 2 exposures and 1 metric event of the deleted `gone/web/production`.
async fn at_migration_8(url: &str, postgres: bool) {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE bunting_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         applied_at TEXT NOT NULL)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    for (version, name, sqlite, pg) in BEFORE {
        sqlx::raw_sql(if postgres { pg } else { sqlite })
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO bunting_migrations VALUES ($1, $2, '2026-11-30T00:00:00Z')")
            .bind(version)
            .bind(name)
            .execute(&mut c)
            .await
            .unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO organizations (key, name) VALUES ('acme', 'Acme'); \
         INSERT INTO projects (org_id, key, name) VALUES (1, 'web', 'Web'); \
         INSERT INTO environments (project_id, key, name) VALUES (1, 'staging', 'Staging'); \
         INSERT INTO environments (project_id, key, name) VALUES (1, 'production', 'Production'); \
         INSERT INTO exposures (environment, id, flag_key, variant, user_key, time_ms, received_ms) VALUES \
           ('acme/web/production', 'x1', 'checkout', 'on', 'u1', 1000, 1000), \
           ('acme/web/production', 'x2', 'checkout', 'off', 'u1', 900, 900), \
           ('acme/web/production', 'x3', 'checkout', 'on', 'u2', 1100, 1100), \
           ('gone/web/production', 'x1', 'checkout', 'on', 'u9', 1000, 1000), \
           ('gone/web/production', 'x4', 'checkout', 'on', 'u8', 1000, 1000); \
         INSERT INTO metric_events (environment, id, name, user_key, value, time_ms, received_ms) VALUES \
           ('acme/web/production', 'o-1', 'purchase', 'u1', 12.5, 2000, 2000), \
           ('acme/web/production', 'o-2', 'purchase', 'u2', NULL, 2100, 2100), \
           ('gone/web/production', 'o-1', 'purchase', 'u9', 1.0, 2000, 2000);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();
}

async fn check(store: &Store) {
    let prod = store
        .environment_ids(&["acme/web/production".into()])
        .await
        .unwrap()["acme/web/production"];
    assert_eq!(prod, 2);
    let x = store.exposures_of(prod).await.unwrap();
    assert_eq!(
        x.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["x2", "x1", "x3"]
    );
    let m = store.metric_events_of(prod).await.unwrap();
    assert_eq!(
        m.iter()
            .map(|e| (e.id.as_str(), e.value))
            .collect::<Vec<_>>(),
        [("o-1", Some(12.5)), ("o-2", None)]
    );
    // The rollup, rebuilt: u1 first saw `off` at 900 and was served both.
    let users = store.exposure_users_of(prod).await.unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(
        (
            users[0].user_key.as_str(),
            users[0].first_ms,
            users[0].variant.as_str()
        ),
        ("u1", 900, "off")
    );
    assert_eq!(
        (users[0].vmin.as_str(), users[0].vmax.as_str()),
        ("off", "on")
    );
    // Nothing of the deleted tenant, under any id.
    for table in ["exposures", "metric_events", "exposure_users"] {
        let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(store.pool())
            .await
            .map(|r| sqlx::Row::get(&r, "n"))
            .unwrap();
        let expected = match table {
            "exposures" => 3,
            _ => 2,
        };
        assert_eq!(n, expected, "{table}");
    }
    assert_eq!(store.count_exposures(1).await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_events_move_to_environment_ids() {
    let dir = std::env::temp_dir().join(format!("bunting-migration-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("old.db").display());
    at_migration_8(&url, false).await;
    let store = Store::open(&url).await.unwrap();
    check(&store).await;
    store.pool().close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgres_events_move_to_environment_ids() {
    let (url, _guard) = common::postgres_schema().await;
    at_migration_8(&url, true).await;
    let store = Store::open(&url).await.unwrap();
    check(&store).await;
    store.pool().close().await;
}

/// Migration 0017: on PostgreSQL the key columns of events and of the
/// rollup compare byte by byte (`COLLATE "C"`), as SQLite's `BINARY` and the
/// rollup's Rust grouping do, whatever the database's own collation.
#[tokio::test]
async fn postgres_event_keys_compare_bytewise() {
    use sqlx::Row;

    let (url, _guard) = common::postgres_schema().await;
    let store = Store::open(&url).await.unwrap();
    let columns = [
        ("exposures", "id"),
        ("exposures", "flag_key"),
        ("exposures", "variant"),
        ("exposures", "user_key"),
        ("metric_events", "id"),
        ("metric_events", "name"),
        ("metric_events", "user_key"),
        ("exposure_users", "flag_key"),
        ("exposure_users", "user_key"),
        ("exposure_users", "variant"),
        ("exposure_users", "vmin"),
        ("exposure_users", "vmax"),
    ];
    for (table, column) in columns {
        let row = sqlx::query(
            "SELECT CAST(collation_name AS TEXT) AS collation_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let collation: Option<String> = row.try_get("collation_name").unwrap();
        assert_eq!(collation.as_deref(), Some("C"), "{table}.{column}");
    }
    store.pool().close().await;
}

/// Migration 0018: on PostgreSQL every stored exposure and metric event
/// carries the id of the transaction that wrote it (incremental looks read
/// it against a look's snapshot), and both backends have the cache table.
#[tokio::test]
async fn postgres_events_carry_their_transaction_id() {
    use sqlx::Row;

    let (url, _guard) = common::postgres_schema().await;
    let store = Store::open(&url).await.unwrap();
    let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    for sql in [
        "INSERT INTO exposures (env_id, id, flag_key, variant, user_key, time_ms, received_ms) \
         VALUES (1, 'x', 'f', 'on', 'u', 0, 0)",
        "INSERT INTO metric_events (env_id, id, name, user_key, time_ms, received_ms) \
         VALUES (1, 'e', 'buy', 'u', 0, 0)",
    ] {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let row = sqlx::query(
        "SELECT (SELECT xid FROM exposures) AS x, (SELECT xid FROM metric_events) AS e, \
         CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT) AS me",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let me: i64 = row.try_get("me").unwrap();
    assert_eq!(row.try_get::<i64, _>("x").unwrap(), me);
    assert_eq!(row.try_get::<i64, _>("e").unwrap(), me);
    sqlx::query("COMMIT").execute(&mut c).await.unwrap();
    c.close().await.unwrap();
    let cached: i64 = sqlx::query("SELECT COUNT(*) AS n FROM analysis_cache")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(cached, 0);
    store.pool().close().await;
}
