//! The publish outbox: what each publisher (a *target*, e.g. `cloudflare`
//! or `directory`) has put into its KV, per environment.
//!
//! The durable publish intent is the environment's `snapshot_version`,
//! bumped in the transaction of every change (with `changed_at`, and
//! `pending_since` when nothing was pending). `publish_state` holds, per
//! (environment, target), the last version put there, the failed attempts
//! since, and the last error. An environment is pending for a target while
//! `snapshot_version > published_version`; nothing else has to be written
//! for a change to reach the edge eventually, so a KV outage (or a crash of
//! the publisher) never loses one.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let ana = Actor::new("ana");
//! let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
//! let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
//! let env = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
//! let pending = store.pending_publications("directory").await.unwrap();
//! assert_eq!(pending[0].edge_env, "acme/web/production");
//! store.mark_published(env.id, "directory", &pending[0].edge_env, pending[0].snapshot_version).await.unwrap();
//! assert!(store.pending_publications("directory").await.unwrap().is_empty());
//! # });
//! ```

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::rows::{edge_env, get_env, now};
use super::{Result, SdkKeyKind, Store};

/// An environment with changes a target has not published yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// The environment's id.
    pub environment_id: i64,
    /// Its name at the edge, `org/project/environment`.
    pub edge_env: String,
    /// Its current snapshot version (the version to publish).
    pub snapshot_version: i64,
    /// The version the target has (0: none yet).
    pub published_version: i64,
    /// When the oldest change not yet published everywhere was committed.
    pub pending_since: Option<String>,
}

/// An SDK key the publisher has to put into KV or remove from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    /// The key's row id.
    pub id: i64,
    /// The SHA-256 (hex) of the raw key: its KV key is `sdk-key:<hash>`.
    pub hash: String,
    /// The environment it reads at the edge.
    pub edge_env: String,
    /// Client or server: its KV record says so.
    pub kind: SdkKeyKind,
    /// Its KV state: `pending`, `live` or `removed`.
    pub kv_state: String,
}

/// One target's publication of an environment, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The publisher's name.
    pub target: String,
    /// The snapshot version in its KV (0: none yet).
    pub published_version: i64,
    /// When that version was put.
    pub published_at: Option<String>,
    /// Failed attempts since the last success.
    pub attempts: i64,
    /// The last failure's message (cleared by a success).
    pub last_error: Option<String>,
    /// Whether the last failure is permanent: the target cannot store this
    /// snapshot (e.g. a key too long for it), so it is not retried until
    /// the environment changes. Known to the process running the publish
    /// loop; `false` elsewhere.
    pub last_error_permanent: bool,
    /// When it was last tried.
    pub last_attempt_at: Option<String>,
    /// Seconds the oldest unpublished change has waited (0 when published).
    pub lag_seconds: f64,
}

/// The publication state of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishStatus {
    /// Its name at the edge, `org/project/environment`.
    pub environment: String,
    /// Its current snapshot version.
    pub snapshot_version: i64,
    /// When the latest change was committed.
    pub changed_at: Option<String>,
    /// When the oldest change not yet published everywhere was committed.
    pub pending_since: Option<String>,
    /// Every target that has tried to publish it, by name.
    pub targets: Vec<TargetStatus>,
}

impl PublishStatus {
    /// The status of `target`, or that of a target which has not published
    /// this environment yet.
    ///
    /// ```
    /// use bunting_origin::store::PublishStatus;
    /// let s = PublishStatus { environment: "a/b/c".into(), snapshot_version: 3,
    ///     changed_at: None, pending_since: None, targets: vec![] };
    /// assert_eq!(s.target("directory").published_version, 0);
    /// ```
    pub fn target(&self, target: &str) -> TargetStatus {
        self.targets
            .iter()
            .find(|t| t.target == target)
            .cloned()
            .unwrap_or_else(|| TargetStatus {
                target: target.to_string(),
                published_version: 0,
                published_at: None,
                attempts: 0,
                last_error: None,
                last_error_permanent: false,
                last_attempt_at: None,
                lag_seconds: lag_seconds(self.pending_since.as_deref()),
            })
    }
}

/// Seconds from a stored time to now (0 for none or an unreadable one).
///
/// ```
/// use bunting_origin::store::publish::lag_seconds;
/// assert_eq!(lag_seconds(None), 0.0);
/// assert!(lag_seconds(Some("2000-01-01T00:00:00.000000Z")) > 0.0);
/// ```
pub fn lag_seconds(since: Option<&str>) -> f64 {
    let Some(since) = since else { return 0.0 };
    match time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339) {
        Ok(t) => (time::OffsetDateTime::now_utc() - t)
            .as_seconds_f64()
            .max(0.0),
        Err(_) => 0.0,
    }
}

const EDGE_ENV: &str = "o.key || '/' || p.key || '/' || e.key";

fn key_change(r: &AnyRow) -> Result<KeyChange> {
    Ok(KeyChange {
        id: r.try_get("id")?,
        hash: r.try_get("hash")?,
        edge_env: r.try_get("edge_env")?,
        kind: SdkKeyKind::parse(&r.try_get::<String, _>("kind")?),
        kv_state: r.try_get("kv_state")?,
    })
}

impl Store {
    /// The name of environment `env_id` at the edge, `org/project/environment`
    /// (keys), as its snapshot and SDK keys carry it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Actor, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let env = store.create_environment(&ana, p.id, "dev", "Dev").await.unwrap();
    /// assert_eq!(store.edge_environment(env.id).await.unwrap(), "acme/web/dev");
    /// # });
    /// ```
    pub async fn edge_environment(&self, env_id: i64) -> Result<String> {
        let mut c = self.conn().await?;
        let env = get_env(&mut c, env_id).await?;
        edge_env(&mut c, &env).await
    }

    /// The environments whose snapshot version is ahead of what `target`
    /// has published, by id.
    pub async fn pending_publications(&self, target: &str) -> Result<Vec<Publication>> {
        let rows = sqlx::query(&format!(
            "SELECT e.id, e.snapshot_version, e.pending_since, {EDGE_ENV} AS edge_env, \
             COALESCE(ps.published_version, 0) AS published_version \
             FROM environments e JOIN projects p ON p.id = e.project_id \
             JOIN organizations o ON o.id = p.org_id \
             LEFT JOIN publish_state ps ON ps.environment_id = e.id AND ps.target = $1 \
             WHERE e.snapshot_version > COALESCE(ps.published_version, 0) ORDER BY e.id"
        ))
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Publication {
                    environment_id: r.try_get("id")?,
                    edge_env: r.try_get("edge_env")?,
                    snapshot_version: r.try_get("snapshot_version")?,
                    published_version: r.try_get("published_version")?,
                    pending_since: r.try_get("pending_since")?,
                })
            })
            .collect()
    }

    /// Records that `target` put version `version` of environment `env_id`
    /// (edge name `edge_env`): clears its attempts and error. The published
    /// version never goes down.
    pub async fn mark_published(
        &self,
        env_id: i64,
        target: &str,
        edge_env: &str,
        version: i64,
    ) -> Result<()> {
        let at = now();
        sqlx::query(
            "INSERT INTO publish_state (environment_id, target, edge_env, published_version, attempts, \
             last_error, last_attempt_at, published_at) VALUES ($1, $2, $3, $4, 0, NULL, $5, $5) \
             ON CONFLICT (environment_id, target) DO UPDATE SET edge_env = $3, \
             published_version = CASE WHEN publish_state.published_version > $4 \
             THEN publish_state.published_version ELSE $4 END, \
             attempts = 0, last_error = NULL, last_attempt_at = $5, published_at = $5",
        )
        .bind(env_id)
        .bind(target)
        .bind(edge_env)
        .bind(version)
        .bind(&at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt of `target` at environment `env_id`: one
    /// more attempt, `error` as the last error. Returns the attempts since
    /// the last success.
    pub async fn mark_failed(
        &self,
        env_id: i64,
        target: &str,
        edge_env: &str,
        error: &str,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO publish_state (environment_id, target, edge_env, attempts, last_error, last_attempt_at) \
             VALUES ($1, $2, $3, 1, $4, $5) \
             ON CONFLICT (environment_id, target) DO UPDATE SET edge_env = $3, \
             attempts = publish_state.attempts + 1, last_error = $4, last_attempt_at = $5 \
             RETURNING attempts",
        )
        .bind(env_id)
        .bind(target)
        .bind(edge_env)
        .bind(error)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("attempts")?)
    }

    /// Clears environment `env_id`'s `pending_since` if its snapshot version
    /// is still `version` (every target has published it).
    pub async fn mark_caught_up(&self, env_id: i64, version: i64) -> Result<()> {
        sqlx::query(
            "UPDATE environments SET pending_since = NULL WHERE id = $1 AND snapshot_version <= $2",
        )
        .bind(env_id)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The publication state of environment `env_id`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Actor, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let env = store.create_environment(&ana, p.id, "dev", "Dev").await.unwrap();
    /// store.mark_failed(env.id, "cloudflare", "acme/web/dev", "503").await.unwrap();
    /// let status = store.publish_status(env.id).await.unwrap();
    /// assert_eq!(status.snapshot_version, 1);
    /// assert!(status.pending_since.is_some());
    /// assert_eq!(status.targets[0].last_error.as_deref(), Some("503"));
    /// # });
    /// ```
    pub async fn publish_status(&self, env_id: i64) -> Result<PublishStatus> {
        let mut c = self.conn().await?;
        let env = get_env(&mut c, env_id).await?;
        let environment = edge_env(&mut c, &env).await?;
        let row = sqlx::query("SELECT changed_at, pending_since FROM environments WHERE id = $1")
            .bind(env_id)
            .fetch_one(&mut *c)
            .await?;
        let changed_at: Option<String> = row.try_get("changed_at")?;
        let pending_since: Option<String> = row.try_get("pending_since")?;
        let rows =
            sqlx::query("SELECT * FROM publish_state WHERE environment_id = $1 ORDER BY target")
                .bind(env_id)
                .fetch_all(&mut *c)
                .await?;
        let targets = rows
            .iter()
            .map(|r| {
                let published_version: i64 = r.try_get("published_version")?;
                Ok(TargetStatus {
                    target: r.try_get("target")?,
                    published_version,
                    published_at: r.try_get("published_at")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    last_error_permanent: false,
                    last_attempt_at: r.try_get("last_attempt_at")?,
                    lag_seconds: if published_version < env.snapshot_version {
                        lag_seconds(pending_since.as_deref().or(changed_at.as_deref()))
                    } else {
                        0.0
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PublishStatus {
            environment,
            snapshot_version: env.snapshot_version,
            changed_at,
            pending_since,
            targets,
        })
    }

    /// The SDK keys of environment `env_id` to put into KV: the live ones
    /// (not expired) still `pending`, or every live one with `all` (a
    /// target's first publication of the environment), by id.
    pub async fn sdk_keys_to_put(&self, env_id: i64, all: bool) -> Result<Vec<KeyChange>> {
        let rows = sqlx::query(
            "SELECT id, hash, edge_env, kind, kv_state FROM sdk_keys WHERE environment_id = $1 \
             AND (expires_at IS NULL OR expires_at > $2) \
             AND (kv_state = 'pending' OR ($3 = 1 AND kv_state = 'live')) ORDER BY id",
        )
        .bind(env_id)
        .bind(now())
        .bind(i64::from(all))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_change).collect()
    }

    /// The SDK keys to remove from KV, by id: expired or revoked ones, and
    /// those of deleted environments, not yet `removed`.
    pub async fn sdk_keys_to_remove(&self) -> Result<Vec<KeyChange>> {
        let rows = sqlx::query(
            "SELECT id, hash, edge_env, kind, kv_state FROM sdk_keys WHERE kv_state <> 'removed' \
             AND ((expires_at IS NOT NULL AND expires_at <= $1) \
             OR environment_id NOT IN (SELECT id FROM environments)) ORDER BY id",
        )
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_change).collect()
    }

    /// Sets the KV state of SDK keys `ids` to `state` (`live` or
    /// `removed`). A key is never moved from `removed` back to `live`.
    pub async fn mark_sdk_keys(&self, ids: &[i64], state: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE sdk_keys SET kv_state = $1 WHERE id = $2 AND kv_state <> 'removed'",
            )
            .bind(state)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The edge names of deleted environments whose snapshot `target` still
    /// holds: (environment id, edge name).
    pub async fn orphaned_publications(&self, target: &str) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT environment_id, edge_env FROM publish_state WHERE target = $1 \
             AND edge_env IS NOT NULL AND environment_id NOT IN (SELECT id FROM environments) \
             ORDER BY environment_id",
        )
        .bind(target)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("environment_id")?, r.try_get("edge_env")?)))
            .collect()
    }

    /// Forgets `target`'s publication of deleted environment `env_id` (its
    /// snapshot has been removed from KV).
    pub async fn forget_publication(&self, env_id: i64, target: &str) -> Result<()> {
        sqlx::query("DELETE FROM publish_state WHERE environment_id = $1 AND target = $2")
            .bind(env_id)
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
