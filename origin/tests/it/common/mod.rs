//! Test harness shared by the origin's integration tests: every test runs
//! once on an in-memory SQLite database and once on PostgreSQL in a fresh
//! schema of its own (`BUNTING_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped afterwards.

pub(crate) mod app;
pub(crate) mod cli;
pub(crate) mod docs;
pub(crate) mod origin;
pub(crate) mod publishing;
pub(crate) mod schema;
pub(crate) mod traffic;
pub(crate) mod webhook;
pub(crate) mod world;

use std::sync::atomic::{AtomicU32, Ordering};

use bunting_origin::store::Store;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A PostgreSQL schema that lives as long as the test.
pub(crate) struct PgSchema {
    admin: String,
    name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop may run while unwinding inside the test's runtime: use another.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(&format!(
                            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                        ))
                        .execute(&mut c)
                        .await;
                    }
                })
        })
        .join()
        .unwrap();
    }
}

pub(crate) async fn sqlite() -> (Store, Option<PgSchema>) {
    (Store::open("sqlite::memory:").await.unwrap(), None)
}

pub(crate) async fn postgres() -> (Store, Option<PgSchema>) {
    let (url, guard) = postgres_schema().await;
    (Store::open(&url).await.unwrap(), Some(guard))
}

/// A fresh, empty PostgreSQL schema: the URL that uses it, and its guard.
pub(crate) async fn postgres_schema() -> (String, PgSchema) {
    use sqlx::Connection;
    static N: AtomicU32 = AtomicU32::new(0);
    sqlx::any::install_default_drivers();
    let admin = std::env::var("BUNTING_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_PG.into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut c = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}); the store tests need it \
             (set BUNTING_TEST_POSTGRES to another URL)"
            )
        });
    sqlx::raw_sql(&format!("CREATE SCHEMA {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let guard = PgSchema {
        admin: admin.clone(),
        name: name.clone(),
    };
    let sep = if admin.contains('?') { '&' } else { '?' };
    (
        format!("{admin}{sep}options=-c%20search_path%3D{name}"),
        guard,
    )
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                let (store, _guard) = $crate::common::sqlite().await;
                super::$name(store.clone()).await;
                // Let dropped transactions roll back before the schema goes.
                store.pool().close().await;
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                let (store, _guard) = $crate::common::postgres().await;
                super::$name(store.clone()).await;
                // Let dropped transactions roll back before the schema goes.
                store.pool().close().await;
            })*
        }
    };
}

/// Waits until `cond` (which may `.await`) holds, failing with `what` after
/// 15 s: a liveness bound, generous for a loaded CI machine, not a speed
/// check.
macro_rules! until {
    ($what:expr, $cond:expr) => {{
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while !($cond) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out: {}",
                $what
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }};
}
