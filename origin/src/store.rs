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
pub mod audit;
mod error;
pub mod events;
pub mod experiments;
pub mod limits;
mod lookup;
pub mod publish;
mod records;
pub mod rollouts;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use bunting_core::model::{FlagMetadata, Layer, LayerSlot, SCHEMA_VERSION, Segment};
use bunting_core::{Flag, FlagType, Serve, Snapshot};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

pub use access::{Role, SdkKeyKind, SdkKeyRecord, TokenRecord};
pub use audit::{AuditEntry, AuditFault, AuditPage, AuditQuery, AuditReport, GENESIS_HASH};
pub use error::{Problem, Result, StoreError};
pub use events::{EventBatch, Exposure, InsertCounts, MetricEvent};
pub use lookup::FlagFilter;
pub use publish::{KeyChange, Publication, PublishStatus, TargetStatus};
pub use records::{
    Actor, ConfigSpec, Environment, FlagConfig, FlagRecord, FlagSpec, LayerRecord, Organization,
    Project, SegmentRecord,
};

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file or in memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The schema migrations of each backend: (version, name, SQL).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "access",
        include_str!("../migrations/sqlite/0002_access.sql"),
    ),
    (
        3,
        "publish",
        include_str!("../migrations/sqlite/0003_publish.sql"),
    ),
    (
        4,
        "events",
        include_str!("../migrations/sqlite/0004_events.sql"),
    ),
    (
        5,
        "experiments",
        include_str!("../migrations/sqlite/0005_experiments.sql"),
    ),
    (
        6,
        "analysis_indexes",
        include_str!("../migrations/sqlite/0006_analysis_indexes.sql"),
    ),
    (
        7,
        "exposure_users",
        include_str!("../migrations/sqlite/0007_exposure_users.sql"),
    ),
    (
        8,
        "guarded_rollouts",
        include_str!("../migrations/sqlite/0008_guarded_rollouts.sql"),
    ),
    (
        9,
        "event_identity",
        include_str!("../migrations/sqlite/0009_event_identity.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "access",
        include_str!("../migrations/postgres/0002_access.sql"),
    ),
    (
        3,
        "publish",
        include_str!("../migrations/postgres/0003_publish.sql"),
    ),
    (
        4,
        "events",
        include_str!("../migrations/postgres/0004_events.sql"),
    ),
    (
        5,
        "experiments",
        include_str!("../migrations/postgres/0005_experiments.sql"),
    ),
    (
        6,
        "analysis_indexes",
        include_str!("../migrations/postgres/0006_analysis_indexes.sql"),
    ),
    (
        7,
        "exposure_users",
        include_str!("../migrations/postgres/0007_exposure_users.sql"),
    ),
    (
        8,
        "guarded_rollouts",
        include_str!("../migrations/postgres/0008_guarded_rollouts.sql"),
    ),
    (
        9,
        "event_identity",
        include_str!("../migrations/postgres/0009_event_identity.sql"),
    ),
];

/// The storage layer. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

/// The current time as stored: UTC, microseconds, fixed width (sorts as text).
fn now() -> String {
    stored_time(time::OffsetDateTime::now_utc())
}

/// `t` in the stored format (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC).
fn stored_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Through Value: object keys come out sorted.
    serde_json::to_value(v).expect("serializable").to_string()
}

fn from_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn opt_json<T: DeserializeOwned>(row: &AnyRow, col: &str) -> Result<Option<T>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn not_found(entity: &'static str, id: impl ToString) -> StoreError {
    StoreError::NotFound {
        entity,
        id: id.to_string(),
    }
}

fn check_version(current: i64, expected: i64) -> Result<()> {
    if current == expected {
        Ok(())
    } else {
        Err(StoreError::Conflict { current })
    }
}

fn check_key(problems: &mut Vec<Problem>, key: &str) {
    if key.is_empty()
        || key.len() > 200
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        problems.push(Problem::new(
            "key",
            format!("{key:?} must be 1-200 characters of A-Z a-z 0-9 - _ ."),
        ));
    } else if key == "." || key == ".." {
        // Keys are URL path segments and file names: these two mean "this"
        // and "the parent" there.
        problems.push(Problem::new(
            "key",
            format!("{key:?} is not a key: `.` and `..` name directories in paths"),
        ));
    }
}

fn valid_key(key: &str) -> Result<()> {
    let mut p = Vec::new();
    check_key(&mut p, key);
    if p.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p))
    }
}

/// The key of an organization, project or environment: a key
/// ([`check_key`]) of at most [`crate::kv::MAX_SCOPE_KEY_BYTES`] bytes, so
/// that every publisher can store `snapshot:<org>/<project>/<env>`.
fn valid_scope_key(key: &str) -> Result<()> {
    let mut p = Vec::new();
    check_key(&mut p, key);
    if p.is_empty() && key.len() > crate::kv::MAX_SCOPE_KEY_BYTES {
        p.push(Problem::new(
            "key",
            format!(
                "{key:?} is {} characters; organization, project and environment keys have at most {} \
                 (the edge's KV keys and file names are made of all three)",
                key.len(),
                crate::kv::MAX_SCOPE_KEY_BYTES
            ),
        ));
    }
    if p.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p))
    }
}

fn org_row(r: &AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
    })
}

fn project_row(r: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
    })
}

fn env_row(r: &AnyRow) -> Result<Environment> {
    Ok(Environment {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        key: r.try_get("key")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        snapshot_version: r.try_get("snapshot_version")?,
    })
}

fn flag_row(r: &AnyRow) -> Result<FlagRecord> {
    let flag_type: String = r.try_get("flag_type")?;
    Ok(FlagRecord {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        spec: FlagSpec {
            key: r.try_get("key")?,
            flag_type: serde_json::from_value::<FlagType>(Value::String(flag_type))
                .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
            variants: from_json(r, "variants")?,
            off_variant: r.try_get("off_variant")?,
            description: r.try_get("description")?,
            owner: r.try_get("owner")?,
            tags: from_json(r, "tags")?,
            salt: r.try_get("salt")?,
            bucket_by: r.try_get("bucket_by")?,
            layer: opt_json::<LayerSlot>(r, "layer")?,
        },
        version: r.try_get("version")?,
    })
}

fn config_row(r: &AnyRow) -> Result<FlagConfig> {
    let enabled: i64 = r.try_get("enabled")?;
    Ok(FlagConfig {
        flag_id: r.try_get("flag_id")?,
        environment_id: r.try_get("environment_id")?,
        spec: ConfigSpec {
            enabled: enabled != 0,
            rules: from_json(r, "rules")?,
            fallthrough: from_json(r, "fallthrough")?,
            prerequisites: from_json(r, "prerequisites")?,
        },
        version: r.try_get("version")?,
    })
}

fn segment_row(r: &AnyRow) -> Result<SegmentRecord> {
    Ok(SegmentRecord {
        id: r.try_get("id")?,
        environment_id: r.try_get("environment_id")?,
        segment: Segment {
            key: r.try_get("key")?,
            included: from_json(r, "included")?,
            excluded: from_json(r, "excluded")?,
            condition: r.try_get("condition")?,
            description: r.try_get("description")?,
        },
        version: r.try_get("version")?,
    })
}

fn layer_row(r: &AnyRow) -> Result<LayerRecord> {
    Ok(LayerRecord {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        layer: Layer {
            key: r.try_get("key")?,
            salt: r.try_get("salt")?,
            bucket_by: r.try_get("bucket_by")?,
        },
        version: r.try_get("version")?,
    })
}

fn flag_problems(spec: &FlagSpec) -> Vec<Problem> {
    let mut p = Vec::new();
    check_key(&mut p, &spec.key);
    if !spec.variants.contains_key(&spec.off_variant) {
        p.push(Problem::new(
            "offVariant",
            format!("{:?} is not a variant", spec.off_variant),
        ));
    }
    for (name, value) in &spec.variants {
        if !spec.flag_type.admits(value) {
            p.push(Problem::new(
                format!("variants.{name}"),
                format!("{value} is not a {}", spec.flag_type.as_str()),
            ));
        }
    }
    p
}

// ---- reads on one connection (shared by the public reads and the writers) ----

async fn fetch_opt(c: &mut AnyConnection, sql: &str, id: i64) -> Result<Option<AnyRow>> {
    Ok(sqlx::query(sql).bind(id).fetch_optional(&mut *c).await?)
}

async fn get_org(c: &mut AnyConnection, id: i64) -> Result<Organization> {
    let r = fetch_opt(c, "SELECT * FROM organizations WHERE id = $1", id).await?;
    org_row(&r.ok_or_else(|| not_found("organization", id))?)
}

async fn get_project(c: &mut AnyConnection, id: i64) -> Result<Project> {
    let r = fetch_opt(c, "SELECT * FROM projects WHERE id = $1", id).await?;
    project_row(&r.ok_or_else(|| not_found("project", id))?)
}

async fn get_env(c: &mut AnyConnection, id: i64) -> Result<Environment> {
    let r = fetch_opt(c, "SELECT * FROM environments WHERE id = $1", id).await?;
    env_row(&r.ok_or_else(|| not_found("environment", id))?)
}

async fn get_flag(c: &mut AnyConnection, id: i64) -> Result<FlagRecord> {
    let r = fetch_opt(c, "SELECT * FROM flags WHERE id = $1", id).await?;
    flag_row(&r.ok_or_else(|| not_found("flag", id))?)
}

async fn get_segment(c: &mut AnyConnection, id: i64) -> Result<SegmentRecord> {
    let r = fetch_opt(c, "SELECT * FROM segments WHERE id = $1", id).await?;
    segment_row(&r.ok_or_else(|| not_found("segment", id))?)
}

async fn get_layer(c: &mut AnyConnection, id: i64) -> Result<LayerRecord> {
    let r = fetch_opt(c, "SELECT * FROM layers WHERE id = $1", id).await?;
    layer_row(&r.ok_or_else(|| not_found("layer", id))?)
}

async fn get_config(c: &mut AnyConnection, flag_id: i64, env_id: i64) -> Result<FlagConfig> {
    let r = sqlx::query("SELECT * FROM flag_configs WHERE flag_id = $1 AND environment_id = $2")
        .bind(flag_id)
        .bind(env_id)
        .fetch_optional(&mut *c)
        .await?;
    config_row(&r.ok_or_else(|| not_found("flagConfig", format!("{flag_id}/{env_id}")))?)
}

async fn list<T>(
    c: &mut AnyConnection,
    sql: &str,
    id: i64,
    f: fn(&AnyRow) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = sqlx::query(sql).bind(id).fetch_all(&mut *c).await?;
    rows.iter().map(f).collect()
}

async fn list_projects(c: &mut AnyConnection, org_id: i64) -> Result<Vec<Project>> {
    list(
        c,
        "SELECT * FROM projects WHERE org_id = $1 ORDER BY key",
        org_id,
        project_row,
    )
    .await
}

async fn list_envs(c: &mut AnyConnection, project_id: i64) -> Result<Vec<Environment>> {
    list(
        c,
        "SELECT * FROM environments WHERE project_id = $1 ORDER BY key",
        project_id,
        env_row,
    )
    .await
}

async fn list_flags(c: &mut AnyConnection, project_id: i64) -> Result<Vec<FlagRecord>> {
    list(
        c,
        "SELECT * FROM flags WHERE project_id = $1 ORDER BY key",
        project_id,
        flag_row,
    )
    .await
}

async fn list_segments(c: &mut AnyConnection, env_id: i64) -> Result<Vec<SegmentRecord>> {
    list(
        c,
        "SELECT * FROM segments WHERE environment_id = $1 ORDER BY key",
        env_id,
        segment_row,
    )
    .await
}

async fn list_layers(c: &mut AnyConnection, project_id: i64) -> Result<Vec<LayerRecord>> {
    list(
        c,
        "SELECT * FROM layers WHERE project_id = $1 ORDER BY key",
        project_id,
        layer_row,
    )
    .await
}

/// The environment's name at the edge: `org/project/environment` (keys).
async fn edge_env(c: &mut AnyConnection, env: &Environment) -> Result<String> {
    let project = get_project(c, env.project_id).await?;
    let org = get_org(c, project.org_id).await?;
    Ok(format!("{}/{}/{}", org.key, project.key, env.key))
}

async fn build_snapshot(c: &mut AnyConnection, env_id: i64) -> Result<Snapshot> {
    let env = get_env(c, env_id).await?;
    let edge = edge_env(c, &env).await?;
    let flags = list_flags(c, env.project_id).await?;
    let configs: BTreeMap<i64, ConfigSpec> = list(
        c,
        "SELECT * FROM flag_configs WHERE environment_id = $1",
        env_id,
        config_row,
    )
    .await?
    .into_iter()
    .map(|c| (c.flag_id, c.spec))
    .collect();
    let segments = list_segments(c, env_id).await?;
    let layers = list_layers(c, env.project_id).await?;
    let flags = flags
        .into_iter()
        .map(|f| {
            let spec = f.spec;
            let config = configs.get(&f.id).cloned().unwrap_or_else(|| ConfigSpec {
                enabled: false,
                rules: Vec::new(),
                fallthrough: Serve::Variant(spec.off_variant.clone()),
                prerequisites: Vec::new(),
            });
            Flag {
                key: spec.key,
                flag_type: spec.flag_type,
                variants: spec.variants,
                enabled: config.enabled,
                off_variant: spec.off_variant,
                rules: config.rules,
                fallthrough: config.fallthrough,
                prerequisites: config.prerequisites,
                salt: spec.salt,
                bucket_by: spec.bucket_by,
                layer: spec.layer,
                metadata: FlagMetadata {
                    description: spec.description,
                    owner: spec.owner,
                    tags: spec.tags,
                },
            }
        })
        .collect();
    let mut snapshot = Snapshot {
        schema_version: SCHEMA_VERSION,
        environment: edge,
        version: env.snapshot_version as u64,
        generated_at: now(),
        flags,
        segments: segments.into_iter().map(|s| s.segment).collect(),
        layers: layers.into_iter().map(|l| l.layer).collect(),
        checksum: None,
    };
    bunting_core::snapshot::seal(&mut snapshot);
    Ok(snapshot)
}

/// One write transaction: holds the audit head's lock, appends entries and
/// collects the environments whose snapshots the writes touched.
///
/// Lock scope: a write locks only its own rows while it works (on
/// PostgreSQL its organization's row first, so one organization's writes
/// run one at a time, and each touched environment's row when it bumps
/// it), validates the snapshots it changed, and only then takes the audit
/// head's lock to append its buffered entries to the hash chain and commit.
/// So one tenant's expensive write (a large snapshot to validate) never
/// holds the lock every other tenant's writes need, which is held for an
/// insert and a commit only. (SQLite has a single writer: there the write
/// takes the database's write lock up front, `BEGIN IMMEDIATE`, and waits
/// for it instead of failing with "database is locked"; [`limits`] bounds
/// how long any write can hold it.)
struct Write<'a> {
    tx: Transaction<'static, Any>,
    actor: &'a Actor,
    /// Audit entries of this write, chained at commit.
    pending: Vec<AuditEntry>,
    envs: BTreeSet<i64>,
}

impl Write<'_> {
    fn c(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    async fn audit<B: Serialize, A: Serialize>(
        &mut self,
        action: &str,
        entity_type: &str,
        (entity_id, entity_key): (i64, &str),
        before: Option<&B>,
        after: Option<&A>,
    ) -> Result<()> {
        self.pending.push(AuditEntry {
            seq: 0,
            actor: self.actor.name.clone(),
            at: now(),
            action: action.into(),
            entity_type: entity_type.into(),
            entity_id,
            entity_key: entity_key.into(),
            before: before.map(to_json),
            after: after.map(to_json),
            request_id: self.actor.request_id.clone(),
            org_id: if entity_type == "organization" {
                Some(entity_id)
            } else {
                self.actor.org_id
            },
            prev_hash: String::new(),
            hash: String::new(),
        });
        Ok(())
    }

    /// Appends the buffered entries to the hash chain (under the audit
    /// head's lock, held until the commit that follows).
    async fn append_audit(&mut self) -> Result<()> {
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(self.c())
            .await?;
        let (mut seq, mut hash): (i64, String) = (head.try_get("seq")?, head.try_get("hash")?);
        for mut e in std::mem::take(&mut self.pending) {
            seq += 1;
            e.seq = seq;
            e.prev_hash = hash;
            e.hash = e.compute_hash();
            self.insert_audit(&e).await?;
            hash = e.hash;
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(self.c())
            .await?;
        Ok(())
    }

    async fn insert_audit(&mut self, e: &AuditEntry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (seq, actor, at, action, entity_type, entity_id, entity_key, before, after, \
             request_id, prev_hash, hash, org_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(e.seq)
        .bind(&e.actor)
        .bind(&e.at)
        .bind(&e.action)
        .bind(&e.entity_type)
        .bind(e.entity_id)
        .bind(&e.entity_key)
        .bind(&e.before)
        .bind(&e.after)
        .bind(&e.request_id)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .bind(e.org_id)
        .execute(self.c())
        .await?;
        Ok(())
    }

    async fn touch_project(&mut self, project_id: i64) -> Result<()> {
        for e in list_envs(self.c(), project_id).await? {
            self.envs.insert(e.id);
        }
        Ok(())
    }

    /// Bumps and validates the touched environments, moves the audit head and
    /// commits.
    async fn commit(mut self) -> Result<()> {
        let at = now();
        for env_id in std::mem::take(&mut self.envs) {
            // The bump is the durable publish intent (see `store::publish`).
            let bumped = sqlx::query(
                "UPDATE environments SET snapshot_version = snapshot_version + 1, changed_at = $1, \
                 pending_since = COALESCE(pending_since, $1) WHERE id = $2",
            )
            .bind(&at)
            .bind(env_id)
            .execute(self.c())
            .await?;
            if bumped.rows_affected() == 0 {
                continue; // deleted in this transaction
            }
            let snapshot = build_snapshot(self.c(), env_id).await?;
            // The environment's key (the last part of the edge name).
            let env_key = snapshot.environment.rsplit('/').next().unwrap_or_default();
            let located = |problems: Vec<Problem>| -> Vec<Problem> {
                problems
                    .into_iter()
                    .map(|p| Problem {
                        path: format!("{env_key}: {}", p.path),
                        ..p
                    })
                    .collect()
            };
            // Bounded first: validation's cost grows with the snapshot.
            if let Err(problems) = limits::check(&snapshot) {
                return Err(StoreError::TooLarge(located(problems)));
            }
            if let Err(bunting_core::LoadError::Invalid(problems)) =
                bunting_core::Engine::from_snapshot(&snapshot)
            {
                return Err(StoreError::Invalid(located(
                    problems
                        .into_iter()
                        .map(|p| Problem {
                            entity: p.entity,
                            path: p.path,
                            message: p.message,
                        })
                        .collect(),
                )));
            }
        }
        self.append_audit().await?;
        self.tx.commit().await?;
        Ok(())
    }

    // ---- organizations, projects, environments ----

    async fn insert_named(
        &mut self,
        entity: &'static str,
        sql: &str,
        parent: Option<i64>,
        key: &str,
        name: &str,
    ) -> Result<i64> {
        valid_scope_key(key)?;
        let mut q = sqlx::query(sql);
        if let Some(p) = parent {
            q = q.bind(p);
        }
        let row = q
            .bind(key)
            .bind(name)
            .fetch_one(self.c())
            .await
            .map_err(StoreError::on_write(entity, key))?;
        Ok(row.try_get("id")?)
    }

    async fn create_environment(
        &mut self,
        project_id: i64,
        key: &str,
        name: &str,
    ) -> Result<Environment> {
        get_project(self.c(), project_id).await?;
        let id = self
            .insert_named(
                "environment",
                "INSERT INTO environments (project_id, key, name) VALUES ($1, $2, $3) RETURNING id",
                Some(project_id),
                key,
                name,
            )
            .await?;
        for f in list_flags(self.c(), project_id).await? {
            self.insert_default_config(&f, id).await?;
        }
        let env = get_env(self.c(), id).await?;
        self.audit("create", "environment", (id, key), None::<&()>, Some(&env))
            .await?;
        self.envs.insert(id);
        Ok(env)
    }

    // ---- flags ----

    async fn insert_default_config(&mut self, f: &FlagRecord, env_id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO flag_configs (flag_id, environment_id, enabled, rules, fallthrough, prerequisites) \
             VALUES ($1, $2, 0, '[]', $3, '[]')",
        )
        .bind(f.id)
        .bind(env_id)
        .bind(to_json(&Serve::Variant(f.spec.off_variant.clone())))
        .execute(self.c())
        .await?;
        Ok(())
    }

    async fn create_flag(&mut self, project_id: i64, spec: &FlagSpec) -> Result<FlagRecord> {
        let problems = flag_problems(spec);
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        get_project(self.c(), project_id).await?;
        let row = sqlx::query(
            "INSERT INTO flags (project_id, key, flag_type, variants, off_variant, description, owner, tags, salt, \
             bucket_by, layer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(project_id)
        .bind(&spec.key)
        .bind(spec.flag_type.as_str())
        .bind(to_json(&spec.variants))
        .bind(&spec.off_variant)
        .bind(&spec.description)
        .bind(&spec.owner)
        .bind(to_json(&spec.tags))
        .bind(&spec.salt)
        .bind(&spec.bucket_by)
        .bind(spec.layer.as_ref().map(to_json))
        .fetch_one(self.c())
        .await
        .map_err(StoreError::on_write("flag", &spec.key))?;
        let id: i64 = row.try_get("id")?;
        let flag = get_flag(self.c(), id).await?;
        for env in list_envs(self.c(), project_id).await? {
            self.insert_default_config(&flag, env.id).await?;
        }
        self.audit("create", "flag", (id, &spec.key), None::<&()>, Some(&flag))
            .await?;
        self.touch_project(project_id).await?;
        Ok(flag)
    }

    async fn update_flag(
        &mut self,
        id: i64,
        expected: Option<i64>,
        spec: &FlagSpec,
    ) -> Result<FlagRecord> {
        let problems = flag_problems(spec);
        if !problems.is_empty() {
            return Err(StoreError::Invalid(problems));
        }
        let before = get_flag(self.c(), id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        sqlx::query(
            "UPDATE flags SET key = $1, flag_type = $2, variants = $3, off_variant = $4, description = $5, \
             owner = $6, tags = $7, salt = $8, bucket_by = $9, layer = $10, version = version + 1 WHERE id = $11",
        )
        .bind(&spec.key)
        .bind(spec.flag_type.as_str())
        .bind(to_json(&spec.variants))
        .bind(&spec.off_variant)
        .bind(&spec.description)
        .bind(&spec.owner)
        .bind(to_json(&spec.tags))
        .bind(&spec.salt)
        .bind(&spec.bucket_by)
        .bind(spec.layer.as_ref().map(to_json))
        .bind(id)
        .execute(self.c())
        .await
        .map_err(StoreError::on_write("flag", &spec.key))?;
        let after = get_flag(self.c(), id).await?;
        self.audit(
            "update",
            "flag",
            (id, &spec.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.touch_project(before.project_id).await?;
        Ok(after)
    }

    async fn update_config(
        &mut self,
        flag_id: i64,
        env_id: i64,
        expected: Option<i64>,
        spec: &ConfigSpec,
    ) -> Result<FlagConfig> {
        let before = get_config(self.c(), flag_id, env_id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        sqlx::query(
            "UPDATE flag_configs SET enabled = $1, rules = $2, fallthrough = $3, prerequisites = $4, \
             version = version + 1 WHERE flag_id = $5 AND environment_id = $6",
        )
        .bind(i64::from(spec.enabled))
        .bind(to_json(&spec.rules))
        .bind(to_json(&spec.fallthrough))
        .bind(to_json(&spec.prerequisites))
        .bind(flag_id)
        .bind(env_id)
        .execute(self.c())
        .await?;
        let after = get_config(self.c(), flag_id, env_id).await?;
        let flag = get_flag(self.c(), flag_id).await?;
        let env = get_env(self.c(), env_id).await?;
        let key = format!("{}/{}", flag.spec.key, env.key);
        self.audit(
            "update",
            "flagConfig",
            (flag_id, &key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.envs.insert(env_id);
        Ok(after)
    }

    // ---- segments and layers ----

    async fn create_segment(&mut self, env_id: i64, segment: &Segment) -> Result<SegmentRecord> {
        valid_key(&segment.key)?;
        get_env(self.c(), env_id).await?;
        let row = sqlx::query(
            "INSERT INTO segments (environment_id, key, included, excluded, condition, description) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(env_id)
        .bind(&segment.key)
        .bind(to_json(&segment.included))
        .bind(to_json(&segment.excluded))
        .bind(&segment.condition)
        .bind(&segment.description)
        .fetch_one(self.c())
        .await
        .map_err(StoreError::on_write("segment", &segment.key))?;
        let id: i64 = row.try_get("id")?;
        let rec = get_segment(self.c(), id).await?;
        self.audit(
            "create",
            "segment",
            (id, &segment.key),
            None::<&()>,
            Some(&rec),
        )
        .await?;
        self.envs.insert(env_id);
        Ok(rec)
    }

    async fn update_segment(
        &mut self,
        id: i64,
        expected: Option<i64>,
        segment: &Segment,
    ) -> Result<SegmentRecord> {
        valid_key(&segment.key)?;
        let before = get_segment(self.c(), id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        sqlx::query(
            "UPDATE segments SET key = $1, included = $2, excluded = $3, condition = $4, description = $5, \
             version = version + 1 WHERE id = $6",
        )
        .bind(&segment.key)
        .bind(to_json(&segment.included))
        .bind(to_json(&segment.excluded))
        .bind(&segment.condition)
        .bind(&segment.description)
        .bind(id)
        .execute(self.c())
        .await
        .map_err(StoreError::on_write("segment", &segment.key))?;
        let after = get_segment(self.c(), id).await?;
        self.audit(
            "update",
            "segment",
            (id, &segment.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.envs.insert(before.environment_id);
        Ok(after)
    }

    async fn create_layer(&mut self, project_id: i64, layer: &Layer) -> Result<LayerRecord> {
        valid_key(&layer.key)?;
        get_project(self.c(), project_id).await?;
        let row = sqlx::query("INSERT INTO layers (project_id, key, salt, bucket_by) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(project_id)
            .bind(&layer.key)
            .bind(&layer.salt)
            .bind(&layer.bucket_by)
            .fetch_one(self.c())
            .await
            .map_err(StoreError::on_write("layer", &layer.key))?;
        let id: i64 = row.try_get("id")?;
        let rec = get_layer(self.c(), id).await?;
        self.audit("create", "layer", (id, &layer.key), None::<&()>, Some(&rec))
            .await?;
        self.touch_project(project_id).await?;
        Ok(rec)
    }

    async fn update_layer(
        &mut self,
        id: i64,
        expected: Option<i64>,
        layer: &Layer,
    ) -> Result<LayerRecord> {
        let before = get_layer(self.c(), id).await?;
        if let Some(v) = expected {
            check_version(before.version, v)?;
        }
        if layer.key != before.layer.key {
            return Err(StoreError::Invalid(vec![Problem::new(
                "key",
                format!(
                    "a layer's key cannot change (it is {:?}; flags name it)",
                    before.layer.key
                ),
            )]));
        }
        sqlx::query(
            "UPDATE layers SET salt = $1, bucket_by = $2, version = version + 1 WHERE id = $3",
        )
        .bind(&layer.salt)
        .bind(&layer.bucket_by)
        .bind(id)
        .execute(self.c())
        .await?;
        let after = get_layer(self.c(), id).await?;
        self.audit(
            "update",
            "layer",
            (id, &layer.key),
            Some(&before),
            Some(&after),
        )
        .await?;
        self.touch_project(before.project_id).await?;
        Ok(after)
    }

    /// Audits the deletion of everything an environment holds (its flag
    /// configurations and segments), which the database deletes by cascade.
    async fn audit_env_contents(&mut self, env_id: i64) -> Result<()> {
        let env = get_env(self.c(), env_id).await?;
        for f in list_flags(self.c(), env.project_id).await? {
            if let Ok(c) = get_config(self.c(), f.id, env_id).await {
                let key = format!("{}/{}", f.spec.key, env.key);
                self.audit("delete", "flagConfig", (f.id, &key), Some(&c), None::<&()>)
                    .await?;
            }
        }
        for seg in list_segments(self.c(), env_id).await? {
            self.audit(
                "delete",
                "segment",
                (seg.id, &seg.segment.key),
                Some(&seg),
                None::<&()>,
            )
            .await?;
        }
        Ok(())
    }

    /// Audits the deletion of everything a project holds (environments with
    /// their contents, flags, layers).
    async fn audit_project_contents(&mut self, project_id: i64) -> Result<()> {
        for e in list_envs(self.c(), project_id).await? {
            self.audit_env_contents(e.id).await?;
            self.audit(
                "delete",
                "environment",
                (e.id, &e.key),
                Some(&e),
                None::<&()>,
            )
            .await?;
        }
        for f in list_flags(self.c(), project_id).await? {
            self.audit("delete", "flag", (f.id, &f.spec.key), Some(&f), None::<&()>)
                .await?;
        }
        for l in list_layers(self.c(), project_id).await? {
            self.audit(
                "delete",
                "layer",
                (l.id, &l.layer.key),
                Some(&l),
                None::<&()>,
            )
            .await?;
        }
        Ok(())
    }

    /// Deletes row `id` of `table` after the version check and audits it.
    async fn delete<T: Serialize>(
        &mut self,
        entity: &'static str,
        table: &str,
        id: i64,
        expected: i64,
        (version, key, before): (i64, String, T),
    ) -> Result<()> {
        check_version(version, expected)?;
        sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(self.c())
            .await?;
        self.audit("delete", entity, (id, &key), Some(&before), None::<&()>)
            .await
    }
}

/// An entity with a display name that [`Store`] renames the same way:
/// organizations, projects, environments.
trait Named: Serialize + Sized {
    /// Its table.
    const TABLE: &'static str;
    /// Its audit entity type.
    const ENTITY: &'static str;
    /// Reads row `id`.
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self>;
    /// Its key and version.
    fn key_version(&self) -> (&str, i64);
}

impl Named for Organization {
    const TABLE: &'static str = "organizations";
    const ENTITY: &'static str = "organization";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_org(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.key, self.version)
    }
}

impl Named for Project {
    const TABLE: &'static str = "projects";
    const ENTITY: &'static str = "project";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_project(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.key, self.version)
    }
}

impl Named for Environment {
    const TABLE: &'static str = "environments";
    const ENTITY: &'static str = "environment";
    async fn get(c: &mut AnyConnection, id: i64) -> Result<Self> {
        get_env(c, id).await
    }
    fn key_version(&self) -> (&str, i64) {
        (&self.key, self.version)
    }
}

impl Store {
    /// Renames `T` row `id` (at version `expected`) and audits it.
    async fn rename<T: Named>(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<T> {
        let mut w = self.begin(actor).await?;
        let before = T::get(w.c(), id).await?;
        let (key, version) = before.key_version();
        check_version(version, expected)?;
        sqlx::query(&format!(
            "UPDATE {} SET name = $1, version = version + 1 WHERE id = $2",
            T::TABLE
        ))
        .bind(name)
        .bind(id)
        .execute(w.c())
        .await?;
        let after = T::get(w.c(), id).await?;
        let key = key.to_string();
        w.audit("update", T::ENTITY, (id, &key), Some(&before), Some(&after))
            .await?;
        w.commit().await?;
        Ok(after)
    }
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    /// Environments created.
    pub environments_created: u32,
    /// Layers created.
    pub layers_created: u32,
    /// Flags created.
    pub flags_created: u32,
    /// Flags whose definition changed.
    pub flags_updated: u32,
    /// Flag configurations that changed.
    pub configs_updated: u32,
    /// Segments created.
    pub segments_created: u32,
    /// Segments that changed.
    pub segments_updated: u32,
}

impl Store {
    /// Opens (and migrates) a store: `sqlite::memory:` (one connection, gone
    /// when the store is dropped), `sqlite://path/to/file.db` or a bare file
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
            let url = if url.contains("memory") || url.contains("mode=") {
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
        let pool = pool.connect_with(options).await?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool (tests and tools; the schema is the migrations').
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn migrate(&self) -> Result<()> {
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
        for (version, name, sql) in migrations {
            let mut tx = self.pool.begin().await?;
            let done = sqlx::query("SELECT version FROM bunting_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
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
        Ok(())
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
        Ok(Write {
            tx,
            actor,
            pending: Vec::new(),
            envs: BTreeSet::new(),
        })
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Any>> {
        Ok(self.pool.acquire().await?)
    }

    // ---- organizations ----

    /// Creates an organization. Fails with [`StoreError::Duplicate`] when the
    /// key is taken.
    pub async fn create_org(&self, actor: &Actor, key: &str, name: &str) -> Result<Organization> {
        let mut w = self.begin(actor).await?;
        let id = w
            .insert_named(
                "organization",
                "INSERT INTO organizations (key, name) VALUES ($1, $2) RETURNING id",
                None,
                key,
                name,
            )
            .await?;
        let org = get_org(w.c(), id).await?;
        w.audit("create", "organization", (id, key), None::<&()>, Some(&org))
            .await?;
        w.commit().await?;
        Ok(org)
    }

    /// The organization `id`.
    pub async fn org(&self, id: i64) -> Result<Organization> {
        get_org(&mut *self.conn().await?, id).await
    }

    /// Every organization, by key.
    pub async fn orgs(&self) -> Result<Vec<Organization>> {
        let rows = sqlx::query("SELECT * FROM organizations ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(org_row).collect()
    }

    /// Renames organization `id`, which must be at version `expected`.
    pub async fn rename_org(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<Organization> {
        self.rename(actor, id, expected, name).await
    }

    /// Deletes organization `id` (at version `expected`) with everything in it.
    pub async fn delete_org(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_org(w.c(), id).await?;
        check_version(before.version, expected)?;
        for p in list_projects(w.c(), id).await? {
            w.audit_project_contents(p.id).await?;
            w.audit("delete", "project", (p.id, &p.key), Some(&p), None::<&()>)
                .await?;
        }
        for t in w.org_tokens(id).await? {
            w.audit("delete", "token", (t.id, &t.name), Some(&t), None::<&()>)
                .await?;
        }
        w.delete(
            "organization",
            "organizations",
            id,
            expected,
            (before.version, before.key.clone(), before),
        )
        .await?;
        w.commit().await
    }

    // ---- projects ----

    /// Creates a project in organization `org_id`.
    pub async fn create_project(
        &self,
        actor: &Actor,
        org_id: i64,
        key: &str,
        name: &str,
    ) -> Result<Project> {
        let mut w = self.begin(actor).await?;
        get_org(w.c(), org_id).await?;
        let id = w
            .insert_named(
                "project",
                "INSERT INTO projects (org_id, key, name) VALUES ($1, $2, $3) RETURNING id",
                Some(org_id),
                key,
                name,
            )
            .await?;
        let p = get_project(w.c(), id).await?;
        w.audit("create", "project", (id, key), None::<&()>, Some(&p))
            .await?;
        w.commit().await?;
        Ok(p)
    }

    /// The project `id`.
    pub async fn project(&self, id: i64) -> Result<Project> {
        get_project(&mut *self.conn().await?, id).await
    }

    /// The projects of organization `org_id`, by key.
    pub async fn projects(&self, org_id: i64) -> Result<Vec<Project>> {
        list_projects(&mut *self.conn().await?, org_id).await
    }

    /// Renames project `id`, which must be at version `expected`.
    pub async fn rename_project(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<Project> {
        self.rename(actor, id, expected, name).await
    }

    /// Deletes project `id` (at version `expected`) with everything in it.
    pub async fn delete_project(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_project(w.c(), id).await?;
        check_version(before.version, expected)?;
        w.audit_project_contents(id).await?;
        w.delete(
            "project",
            "projects",
            id,
            expected,
            (before.version, before.key.clone(), before),
        )
        .await?;
        w.commit().await
    }

    // ---- environments ----

    /// Creates an environment in project `project_id`; every flag of the
    /// project gets a default (off) configuration in it.
    pub async fn create_environment(
        &self,
        actor: &Actor,
        project_id: i64,
        key: &str,
        name: &str,
    ) -> Result<Environment> {
        let mut w = self.begin(actor).await?;
        let env = w.create_environment(project_id, key, name).await?;
        w.commit().await?;
        self.environment(env.id).await
    }

    /// The environment `id`.
    pub async fn environment(&self, id: i64) -> Result<Environment> {
        get_env(&mut *self.conn().await?, id).await
    }

    /// The environments of project `project_id`, by key.
    pub async fn environments(&self, project_id: i64) -> Result<Vec<Environment>> {
        list_envs(&mut *self.conn().await?, project_id).await
    }

    /// Renames environment `id`, which must be at version `expected`.
    pub async fn rename_environment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        name: &str,
    ) -> Result<Environment> {
        self.rename(actor, id, expected, name).await
    }

    /// Deletes environment `id` (at version `expected`) with its
    /// configurations and segments.
    pub async fn delete_environment(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_env(w.c(), id).await?;
        check_version(before.version, expected)?;
        w.audit_env_contents(id).await?;
        w.delete(
            "environment",
            "environments",
            id,
            expected,
            (before.version, before.key.clone(), before),
        )
        .await?;
        w.commit().await
    }

    // ---- flags ----

    /// Creates a flag in project `project_id`, with a default configuration
    /// (off, serving `offVariant`) in each of its environments.
    pub async fn create_flag(
        &self,
        actor: &Actor,
        project_id: i64,
        spec: &FlagSpec,
    ) -> Result<FlagRecord> {
        let mut w = self.begin(actor).await?;
        let f = w.create_flag(project_id, spec).await?;
        w.commit().await?;
        Ok(f)
    }

    /// The flag `id`.
    pub async fn flag(&self, id: i64) -> Result<FlagRecord> {
        get_flag(&mut *self.conn().await?, id).await
    }

    /// The flag `key` of project `project_id`.
    pub async fn flag_by_key(&self, project_id: i64, key: &str) -> Result<FlagRecord> {
        let r = sqlx::query("SELECT * FROM flags WHERE project_id = $1 AND key = $2")
            .bind(project_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        flag_row(&r.ok_or_else(|| not_found("flag", key))?)
    }

    /// The flags of project `project_id`, by key.
    pub async fn flags(&self, project_id: i64) -> Result<Vec<FlagRecord>> {
        list_flags(&mut *self.conn().await?, project_id).await
    }

    /// Replaces flag `id`'s definition; it must be at version `expected`.
    pub async fn update_flag(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        spec: &FlagSpec,
    ) -> Result<FlagRecord> {
        let mut w = self.begin(actor).await?;
        let f = w.update_flag(id, Some(expected), spec).await?;
        w.commit().await?;
        Ok(f)
    }

    /// Deletes flag `id` (at version `expected`) and its configurations.
    pub async fn delete_flag(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_flag(w.c(), id).await?;
        w.delete(
            "flag",
            "flags",
            id,
            expected,
            (before.version, before.spec.key.clone(), &before),
        )
        .await?;
        w.touch_project(before.project_id).await?;
        w.commit().await
    }

    /// Flag `flag_id`'s configuration in environment `env_id`.
    pub async fn flag_config(&self, flag_id: i64, env_id: i64) -> Result<FlagConfig> {
        get_config(&mut *self.conn().await?, flag_id, env_id).await
    }

    /// Replaces flag `flag_id`'s configuration in environment `env_id`; it
    /// must be at version `expected`.
    pub async fn update_flag_config(
        &self,
        actor: &Actor,
        flag_id: i64,
        env_id: i64,
        expected: i64,
        spec: &ConfigSpec,
    ) -> Result<FlagConfig> {
        let mut w = self.begin(actor).await?;
        let c = w
            .update_config(flag_id, env_id, Some(expected), spec)
            .await?;
        w.commit().await?;
        Ok(c)
    }

    // ---- segments and layers ----

    /// Creates a segment in environment `env_id`.
    pub async fn create_segment(
        &self,
        actor: &Actor,
        env_id: i64,
        segment: &Segment,
    ) -> Result<SegmentRecord> {
        let mut w = self.begin(actor).await?;
        let s = w.create_segment(env_id, segment).await?;
        w.commit().await?;
        Ok(s)
    }

    /// The segment `id`.
    pub async fn segment(&self, id: i64) -> Result<SegmentRecord> {
        get_segment(&mut *self.conn().await?, id).await
    }

    /// The segments of environment `env_id`, by key.
    pub async fn segments(&self, env_id: i64) -> Result<Vec<SegmentRecord>> {
        list_segments(&mut *self.conn().await?, env_id).await
    }

    /// Replaces segment `id`; it must be at version `expected`.
    pub async fn update_segment(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        segment: &Segment,
    ) -> Result<SegmentRecord> {
        let mut w = self.begin(actor).await?;
        let s = w.update_segment(id, Some(expected), segment).await?;
        w.commit().await?;
        Ok(s)
    }

    /// Deletes segment `id` (at version `expected`).
    pub async fn delete_segment(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_segment(w.c(), id).await?;
        let env_id = before.environment_id;
        w.delete(
            "segment",
            "segments",
            id,
            expected,
            (before.version, before.segment.key.clone(), before),
        )
        .await?;
        w.envs.insert(env_id);
        w.commit().await
    }

    /// Creates a mutual-exclusion layer in project `project_id`.
    pub async fn create_layer(
        &self,
        actor: &Actor,
        project_id: i64,
        layer: &Layer,
    ) -> Result<LayerRecord> {
        let mut w = self.begin(actor).await?;
        let l = w.create_layer(project_id, layer).await?;
        w.commit().await?;
        Ok(l)
    }

    /// Replaces layer `id`'s salt and bucketing attribute (its key is fixed:
    /// flags name it); it must be at version `expected`. Changing the salt
    /// reshuffles who is in which slot of the layer.
    pub async fn update_layer(
        &self,
        actor: &Actor,
        id: i64,
        expected: i64,
        layer: &Layer,
    ) -> Result<LayerRecord> {
        let mut w = self.begin(actor).await?;
        let l = w.update_layer(id, Some(expected), layer).await?;
        w.commit().await?;
        Ok(l)
    }

    /// Deletes layer `id` (at version `expected`); refused
    /// ([`StoreError::Invalid`]) while a flag uses it.
    pub async fn delete_layer(&self, actor: &Actor, id: i64, expected: i64) -> Result<()> {
        let mut w = self.begin(actor).await?;
        let before = get_layer(w.c(), id).await?;
        w.delete(
            "layer",
            "layers",
            id,
            expected,
            (before.version, before.layer.key.clone(), &before),
        )
        .await?;
        w.touch_project(before.project_id).await?;
        w.commit().await
    }

    /// The layers of project `project_id`, by key.
    pub async fn layers(&self, project_id: i64) -> Result<Vec<LayerRecord>> {
        list_layers(&mut *self.conn().await?, project_id).await
    }

    // ---- snapshots and import ----

    /// The sealed snapshot of environment `env_id`, at its current snapshot
    /// version, built from the stored rows.
    pub async fn snapshot(&self, env_id: i64) -> Result<Snapshot> {
        let mut tx = self.pool.begin().await?;
        let s = build_snapshot(&mut tx, env_id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Applies a parsed definition file to project `project_id` in one
    /// transaction: creates the missing environments, layers, flags and
    /// segments, and updates the flags, configurations and segments that
    /// differ. Nothing is deleted (entities missing from the file stay).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_defs::{load, Syntax};
    /// use bunting_origin::store::{Actor, Store};
    /// let defs = load("environments: [production]\nflags:\n  beta:\n    type: boolean\n    variants: {on: true, off: false}\n    offVariant: off\n    environments:\n      production: {fallthrough: on}\n", Syntax::Yaml).unwrap();
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let project = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let summary = store.import(&ana, project.id, &defs).await.unwrap();
    /// assert_eq!(summary.flags_created, 1);
    /// # });
    /// ```
    pub async fn import(
        &self,
        actor: &Actor,
        project_id: i64,
        defs: &bunting_defs::DefinitionFile,
    ) -> Result<ImportSummary> {
        let mut sum = ImportSummary::default();
        let options = bunting_defs::SnapshotOptions::new(0, "1970-01-01T00:00:00Z");
        let mut snapshots = Vec::new();
        for env in defs.environment_names() {
            let s = defs.snapshot(env, &options).map_err(|e| match e {
                bunting_defs::SnapshotError::Invalid(d) => StoreError::Invalid(
                    d.into_iter()
                        .map(|d| {
                            Problem::new(format!("{}:{}", d.pos.line, d.pos.column), d.message)
                        })
                        .collect(),
                ),
                other => StoreError::Invalid(vec![Problem::new("environments", other.to_string())]),
            })?;
            snapshots.push(s);
        }
        let mut w = self.begin(actor).await?;
        get_project(w.c(), project_id).await?;
        let mut envs: BTreeMap<String, i64> = list_envs(w.c(), project_id)
            .await?
            .into_iter()
            .map(|e| (e.key, e.id))
            .collect();
        for s in &snapshots {
            if !envs.contains_key(&s.environment) {
                let e = w
                    .create_environment(project_id, &s.environment, &s.environment)
                    .await?;
                envs.insert(e.key, e.id);
                sum.environments_created += 1;
            }
        }
        let Some(first) = snapshots.first() else {
            w.commit().await?;
            return Ok(sum);
        };
        let layers: BTreeSet<String> = list_layers(w.c(), project_id)
            .await?
            .into_iter()
            .map(|l| l.layer.key)
            .collect();
        for l in &first.layers {
            if !layers.contains(&l.key) {
                w.create_layer(project_id, l).await?;
                sum.layers_created += 1;
            }
        }
        let mut flags: BTreeMap<String, FlagRecord> = list_flags(w.c(), project_id)
            .await?
            .into_iter()
            .map(|f| (f.spec.key.clone(), f))
            .collect();
        for f in &first.flags {
            let spec = FlagSpec {
                key: f.key.clone(),
                flag_type: f.flag_type,
                variants: f.variants.clone(),
                off_variant: f.off_variant.clone(),
                description: f.metadata.description.clone(),
                owner: f.metadata.owner.clone(),
                tags: f.metadata.tags.clone(),
                salt: f.salt.clone(),
                bucket_by: f.bucket_by.clone(),
                layer: f.layer.clone(),
            };
            match flags.get(&f.key) {
                None => {
                    let rec = w.create_flag(project_id, &spec).await?;
                    flags.insert(f.key.clone(), rec);
                    sum.flags_created += 1;
                }
                Some(existing) if existing.spec != spec => {
                    w.update_flag(existing.id, None, &spec).await?;
                    sum.flags_updated += 1;
                }
                Some(_) => {}
            }
        }
        for s in &snapshots {
            let env_id = envs[&s.environment];
            for f in &s.flags {
                let flag_id = flags[&f.key].id;
                let spec = ConfigSpec {
                    enabled: f.enabled,
                    rules: f.rules.clone(),
                    fallthrough: f.fallthrough.clone(),
                    prerequisites: f.prerequisites.clone(),
                };
                if get_config(w.c(), flag_id, env_id).await?.spec != spec {
                    w.update_config(flag_id, env_id, None, &spec).await?;
                    sum.configs_updated += 1;
                }
            }
            let existing: BTreeMap<String, SegmentRecord> = list_segments(w.c(), env_id)
                .await?
                .into_iter()
                .map(|s| (s.segment.key.clone(), s))
                .collect();
            for seg in &s.segments {
                match existing.get(&seg.key) {
                    None => {
                        w.create_segment(env_id, seg).await?;
                        sum.segments_created += 1;
                    }
                    Some(old) if &old.segment != seg => {
                        w.update_segment(old.id, None, seg).await?;
                        sum.segments_updated += 1;
                    }
                    Some(_) => {}
                }
            }
        }
        w.commit().await?;
        Ok(sum)
    }
}
