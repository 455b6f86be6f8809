//! The origin's storage layer: organizations → projects → environments,
//! flags (per project) with a configuration per environment, segments (per
//! environment), layers (per project), a snapshot version per environment,
//! and a hash-chained audit log ([`audit`]).
//!
//! One code path serves SQLite (the embedded default: a file, or
//! `sqlite::memory:`) and PostgreSQL (`postgres://…`) through sqlx's `Any`
//! driver. The schema lives in `origin/migrations/{sqlite,postgres}/` and is
//! applied by [`Store::open`]. JSON columns are `TEXT` holding compact,
//! key-sorted JSON on both backends.
//!
//! Every mutable row carries a `version` (1 on create, +1 per update);
//! updates and deletes take the version the caller read and fail with
//! [`StoreError::Conflict`] when it is stale. Every mutation appends its
//! audit entry in its own transaction and locks the audit head first, so
//! writes are serialized (fine for an admin origin; reads are not).
//! Every write that changes what an environment serves bumps its snapshot
//! version and is refused ([`StoreError::Invalid`]) when the environment's
//! snapshot would not load in [`bunting_core::Engine`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, FlagSpec, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let project = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let prod = store.create_environment(&ana, project.id, "production", "Production").await.unwrap();
//! store.create_flag(&ana, project.id, &FlagSpec::boolean("dark-mode")).await.unwrap();
//! let snapshot = store.snapshot(prod.id).await.unwrap();
//! assert_eq!(snapshot.flags.len(), 1);
//! assert!(bunting_core::Engine::from_snapshot(&snapshot).is_ok());
//! assert!(store.verify_audit().await.unwrap().is_ok());
//! # });
//! ```

pub mod access;
pub mod aggregate;
mod apply;
pub mod audit;
pub mod changes;
mod error;
pub mod events;
pub mod experiments;
mod flag_list;
mod flags;
mod import;
mod keys;
pub mod lead;
pub mod limits;
mod lookup;
mod people;
pub mod permission;
pub mod plan;
pub mod publish;
mod records;
mod results_cache;
mod roles;
pub mod rollouts;
mod rows;
pub mod sessions;
mod snapshot;
mod tenancy;
mod tokens;
pub mod webhooks;
mod write;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, Connection};

pub use access::{SdkKeyGrant, SdkKeyKind, SdkKeyRecord};
pub use audit::{AuditEntry, AuditFault, AuditPage, AuditQuery, AuditReport, GENESIS_HASH};
pub use changes::{
    ChangeDiff, ChangeRequest, ChangeStatus, EnvChange, EnvPolicy, NewChangeRequest, Review,
};
pub use error::{Problem, Result, SnapshotLocation, StoreError};
pub use events::{EventBatch, Exposure, InsertCounts, MetricEvent};
pub use flag_list::{EnvState, FlagSummary};
pub use import::ImportSummary;
pub use lookup::FlagFilter;
pub use people::{Team, TeamSpec, User};
pub use permission::{Grant, Grants, Permission, Permissions, Role, Scope};
pub use publish::{KeyChange, Publication, PublishStatus, TargetStatus};
pub use records::{
    Actor, ConfigSpec, Environment, FlagConfig, FlagRecord, FlagSpec, LayerRecord, Organization,
    Project, SegmentRecord,
};
pub use roles::{Binding, RoleRecord, RoleSpec, Subject};
pub use tokens::{MAX_TOKEN_DAYS, NewToken, TokenKind, TokenRecord};
pub use webhooks::{Delivery, DeliveryAttempt, WebhookEvent, WebhookRecord};

use rows::now;
use write::Write;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file or in memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The schema migrations in `origin/migrations/<dir>/`: (version, name,
/// SQL). Both backends have the same versions and names.
macro_rules! migrations {
    ($dir:literal) => {
        &[
            (
                1,
                "init",
                include_str!(concat!("../../migrations/", $dir, "/0001_init.sql")),
            ),
            (
                2,
                "access",
                include_str!(concat!("../../migrations/", $dir, "/0002_access.sql")),
            ),
            (
                3,
                "publish",
                include_str!(concat!("../../migrations/", $dir, "/0003_publish.sql")),
            ),
            (
                4,
                "events",
                include_str!(concat!("../../migrations/", $dir, "/0004_events.sql")),
            ),
            (
                5,
                "experiments",
                include_str!(concat!("../../migrations/", $dir, "/0005_experiments.sql")),
            ),
            (
                6,
                "analysis_indexes",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0006_analysis_indexes.sql"
                )),
            ),
            (
                7,
                "exposure_users",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0007_exposure_users.sql"
                )),
            ),
            (
                8,
                "guarded_rollouts",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0008_guarded_rollouts.sql"
                )),
            ),
            (
                9,
                "event_identity",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0009_event_identity.sql"
                )),
            ),
            (
                10,
                "identity",
                include_str!(concat!("../../migrations/", $dir, "/0010_identity.sql")),
            ),
            (
                11,
                "sessions",
                include_str!(concat!("../../migrations/", $dir, "/0011_sessions.sql")),
            ),
            (
                12,
                "webhooks",
                include_str!(concat!("../../migrations/", $dir, "/0012_webhooks.sql")),
            ),
            (
                13,
                "changes",
                include_str!(concat!("../../migrations/", $dir, "/0013_changes.sql")),
            ),
            (
                14,
                "flag_state",
                include_str!(concat!("../../migrations/", $dir, "/0014_flag_state.sql")),
            ),
            (
                15,
                "sdk_key_kinds",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0015_sdk_key_kinds.sql"
                )),
            ),
            (
                16,
                "flag_client_side",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0016_flag_client_side.sql"
                )),
            ),
            (
                17,
                "bytewise_event_keys",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0017_bytewise_event_keys.sql"
                )),
            ),
            (
                18,
                "incremental_looks",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0018_incremental_looks.sql"
                )),
            ),
            (
                19,
                "rollup_epoch",
                include_str!(concat!("../../migrations/", $dir, "/0019_rollup_epoch.sql")),
            ),
            (
                20,
                "rollup_without_first_index",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0020_rollup_without_first_index.sql"
                )),
            ),
            (
                21,
                "exposures_analysis_hashed",
                include_str!(concat!(
                    "../../migrations/",
                    $dir,
                    "/0021_exposures_analysis_hashed.sql"
                )),
            ),
        ]
    };
}

/// The schema migrations of each backend: (version, name, SQL).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = migrations!("sqlite");
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = migrations!("postgres");

/// The storage layer. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// On PostgreSQL, a typed pool to the same database for event ingestion
    /// ([`events`]): its inserts bind whole columns as typed arrays in the
    /// binary protocol, which the `Any` driver cannot encode. Connects
    /// lazily, so a store that ingests nothing opens none.
    pub(crate) pg: Option<sqlx::PgPool>,
    /// On PostgreSQL, the rollup rows this store's ingestion committed
    /// (lower bounds of the stored rows), so that merges they already
    /// cover are skipped ([`events`]). Shared by clones.
    pub(crate) covered: Arc<events::Covered>,
    /// For an in-memory database: a connection outside the pool that keeps
    /// the database alive while the pool replaces its own connection.
    _anchor: Option<Arc<Anchor>>,
}

/// A connection held only so that its in-memory database outlives the
/// pool's connections.
struct Anchor(#[allow(dead_code)] std::sync::Mutex<AnyConnection>);

impl std::fmt::Debug for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Anchor")
    }
}

/// The URL of a private, named in-memory SQLite database for
/// `sqlite::memory:`.
///
/// Every connection to `:memory:` is a database of its own, so the pool's
/// one connection was the database: when sqlx dropped it (it does when a
/// query's future is cancelled, as when a browser aborts a fetch), every
/// table vanished and the next request answered 500. A named database with
/// a shared cache lives as long as any connection to it; [`Store`] keeps one
/// outside the pool.
fn private_memory_url() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "sqlite:file:bunting-memory-{}-{n}?mode=memory&cache=shared",
        std::process::id()
    )
}

impl Store {
    /// Opens (and migrates) a store: `sqlite::memory:` (a private in-memory
    /// database, gone when the store and its clones are dropped), `sqlite://path/to/file.db` or a bare file
    /// path (created if missing), or `postgres://user@host/db` (PostgreSQL
    /// connection parameters such as `?options=-c%20search_path%3Dx` apply).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Backend, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// assert_eq!(store.backend(), Backend::Sqlite);
    /// # });
    /// ```
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            let url = if url == "sqlite::memory:" || url == "sqlite://:memory:" {
                private_memory_url()
            } else if url.contains("memory") || url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (url, Backend::Sqlite)
        } else {
            (format!("sqlite://{url}?mode=rwc"), Backend::Sqlite)
        };
        let memory = backend == Backend::Sqlite && url.contains("memory");
        let options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new();
        if memory {
            // Every connection to `:memory:` is its own database: keep one.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            pool = pool.max_connections(8);
        }
        let anchor = if memory {
            let conn = AnyConnection::connect_with(&options).await?;
            Some(Arc::new(Anchor(std::sync::Mutex::new(conn))))
        } else {
            None
        };
        let pg = match backend {
            Backend::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .connect_lazy_with(sqlx::postgres::PgConnectOptions::from_str(&url)?),
            ),
            Backend::Sqlite => None,
        };
        let store = Store {
            pool: pool.clone().connect_with(options.clone()).await?,
            backend,
            pg: pg.clone(),
            covered: Arc::default(),
            _anchor: anchor,
        };
        if !store.migrate().await? || memory {
            return Ok(store);
        }
        // A connection that read the schema before a migration altered a
        // table may still prepare `SELECT *` with the old columns (SQLite
        // re-prepares at the first step, after sqlx has taken the column
        // list): start afresh with connections that know only the new one.
        store.pool.close().await;
        Ok(Store {
            pool: pool.connect_with(options).await?,
            backend,
            pg,
            covered: Arc::default(),
            _anchor: None,
        })
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool (tests and tools; the schema is the migrations').
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the migrations not applied yet; whether there were any.
    async fn migrate(&self) -> Result<bool> {
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS bunting_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let mut applied = false;
        for (version, name, sql) in migrations {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("SELECT version FROM bunting_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            applied = true;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            if *version == events::ROLLUP_MIGRATION {
                events::rebuild_rollup(&mut tx, self.backend).await?;
            }
            sqlx::query(
                "INSERT INTO bunting_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(*version)
            .bind(*name)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(applied)
    }

    async fn begin<'a>(&self, actor: &'a Actor) -> Result<Write<'a>> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        if let (Backend::Postgres, Some(org)) = (self.backend, actor.org_id) {
            // One organization's writes one at a time (see `Write`).
            sqlx::query("SELECT id FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
                .bind(org)
                .execute(&mut *tx)
                .await?;
        }
        Ok(Write::new(tx, actor))
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Any>> {
        Ok(self.pool.acquire().await?)
    }
}
