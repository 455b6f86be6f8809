//! SDK keys (per environment, for the edge) and the secrets of SDK keys
//! and API tokens. Only SHA-256 hashes of the secrets are stored; the raw
//! secret is returned once, when it is created.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::rows::{get_env, get_org, get_project, not_found, now, stored_time};
use super::write::Write;
use super::{Actor, Problem, Result, Store, StoreError};

/// Which SDKs an SDK key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SdkKeyKind {
    /// Browsers and mobile apps (public).
    Client,
    /// Server-side SDKs (secret).
    Server,
}

impl SdkKeyKind {
    /// `client` or `server`: the stored text, and the `kind` of the key's
    /// KV record ([`bunting_wire::kv::SdkKeyRecord`]).
    pub fn as_str(self) -> &'static str {
        match self {
            SdkKeyKind::Client => "client",
            SdkKeyKind::Server => "server",
        }
    }

    /// The kind of the key's KV record.
    pub fn kv(self) -> crate::kv::KeyKind {
        match self {
            SdkKeyKind::Client => crate::kv::KeyKind::Client,
            SdkKeyKind::Server => crate::kv::KeyKind::Server,
        }
    }

    /// The kind stored as `text`: anything but `server` is a client key
    /// (the safer reading: client keys grant less).
    pub(super) fn parse(text: &str) -> SdkKeyKind {
        if text == "server" {
            SdkKeyKind::Server
        } else {
            SdkKeyKind::Client
        }
    }
}

/// A stored SDK key of an environment (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SdkKeyRecord {
    /// Row id.
    pub id: i64,
    /// The environment.
    pub environment_id: i64,
    /// The environment's name at the edge.
    pub edge_env: String,
    /// Client or server.
    pub kind: SdkKeyKind,
    /// A label.
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// When it was made.
    pub created_at: String,
    /// When it stops (stopped) working: set by rotation (after a grace
    /// period) and revocation (now).
    pub expires_at: Option<String>,
    /// Its state in KV: `pending`, `live` or `removed`.
    pub kv_state: String,
}

pub(super) fn secret(prefix: &str) -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).expect("the operating system's random source");
    format!("{prefix}{}", hex::encode(b))
}

pub(super) fn shown_prefix(raw: &str) -> String {
    raw.chars()
        .take(raw.rfind('_').map_or(4, |i| i + 5))
        .collect()
}

/// The stored hash of a raw secret (the edge's SDK-key hash).
pub fn secret_hash(raw: &str) -> String {
    crate::kv::sdk_key_hash(raw)
}

fn key_row(r: &AnyRow) -> Result<SdkKeyRecord> {
    let kind: String = r.try_get("kind")?;
    Ok(SdkKeyRecord {
        id: r.try_get("id")?,
        environment_id: r.try_get("environment_id")?,
        edge_env: r.try_get("edge_env")?,
        kind: SdkKeyKind::parse(&kind),
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        kv_state: r.try_get("kv_state")?,
    })
}

/// A working SDK key, found by its raw secret
/// ([`Store::authenticate_sdk_key`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkKeyGrant {
    /// Row id of the key.
    pub id: i64,
    /// The key's organization.
    pub org_id: i64,
    /// The environment the key belongs to.
    pub environment_id: i64,
    /// That environment's name at the edge now, `<org>/<project>/<env>`:
    /// the name the publisher writes and events carry.
    pub edge_env: String,
    /// Client or server.
    pub kind: SdkKeyKind,
}

/// The longest grace period of a rotated SDK key: 365 days, in seconds.
pub const MAX_GRACE_SECONDS: u64 = 365 * 24 * 3600;

/// `now + seconds` in the stored time format; `None` beyond
/// [`MAX_GRACE_SECONDS`] (every addition is checked, never wrapped).
fn later(seconds: u64) -> Option<String> {
    if seconds > MAX_GRACE_SECONDS {
        return None;
    }
    let d = time::Duration::seconds(i64::try_from(seconds).ok()?);
    time::OffsetDateTime::now_utc()
        .checked_add(d)
        .map(stored_time)
}

impl Store {
    /// Makes an SDK key of `kind` for environment `env_id`; returns its
    /// record and the raw key (shown once). The edge learns it with the
    /// environment's next publication.
    pub async fn create_sdk_key(
        &self,
        actor: &Actor,
        env_id: i64,
        kind: SdkKeyKind,
        name: &str,
    ) -> Result<(SdkKeyRecord, String)> {
        let mut w = self.begin(actor).await?;
        let (k, raw) = w.insert_sdk_key(env_id, kind, name, None).await?;
        w.audit("create", "sdkKey", (k.id, name), None::<&()>, Some(&k))
            .await?;
        w.commit().await?;
        Ok((k, raw))
    }

    /// Registers a raw SDK key chosen by the caller (migrating existing keys,
    /// demos). It must be at least 8 printable ASCII characters.
    pub async fn register_sdk_key(
        &self,
        actor: &Actor,
        env_id: i64,
        kind: SdkKeyKind,
        name: &str,
        raw: &str,
    ) -> Result<SdkKeyRecord> {
        if raw.len() < 8 || !crate::kv::valid_sdk_key(raw) {
            return Err(StoreError::Invalid(vec![Problem::new(
                "key",
                "an SDK key is at least 8 printable ASCII characters without spaces",
            )]));
        }
        let mut w = self.begin(actor).await?;
        let (k, _) = w
            .insert_sdk_key(env_id, kind, name, Some(raw.to_string()))
            .await?;
        w.audit("create", "sdkKey", (k.id, name), None::<&()>, Some(&k))
            .await?;
        w.commit().await?;
        Ok(k)
    }

    /// Replaces SDK key `id` by a new one of the same environment, kind and
    /// name; the old key keeps working for `grace_seconds` (0: stops now;
    /// at most [`MAX_GRACE_SECONDS`], else [`StoreError::Invalid`] at
    /// `graceSeconds`).
    pub async fn rotate_sdk_key(
        &self,
        actor: &Actor,
        id: i64,
        grace_seconds: u64,
    ) -> Result<(SdkKeyRecord, String)> {
        let Some(expires_at) = later(grace_seconds) else {
            return Err(StoreError::Invalid(vec![Problem::new(
                "graceSeconds",
                format!(
                    "{grace_seconds} is more than {MAX_GRACE_SECONDS} seconds (365 days), the longest grace period"
                ),
            )]));
        };
        let mut w = self.begin(actor).await?;
        let old = get_key(w.c(), id).await?;
        if old.expires_at.is_some() {
            return Err(StoreError::Invalid(vec![Problem::new(
                "expiresAt",
                "the key is already rotated or revoked",
            )]));
        }
        sqlx::query("UPDATE sdk_keys SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(w.c())
            .await?;
        let retired = get_key(w.c(), id).await?;
        let (k, raw) = w
            .insert_sdk_key(old.environment_id, old.kind, &old.name, None)
            .await?;
        w.audit(
            "rotate",
            "sdkKey",
            (id, &old.name),
            Some(&old),
            Some(&retired),
        )
        .await?;
        w.audit("create", "sdkKey", (k.id, &k.name), None::<&()>, Some(&k))
            .await?;
        w.commit().await?;
        Ok((k, raw))
    }

    /// Revokes SDK key `id` now. A key that has already stopped working
    /// (revoked, or rotated and past its grace period) is returned as it
    /// is, with nothing changed or audited (idempotent); a rotated key
    /// still in its grace period stops now.
    pub async fn revoke_sdk_key(&self, actor: &Actor, id: i64) -> Result<SdkKeyRecord> {
        let mut w = self.begin(actor).await?;
        let before = get_key(w.c(), id).await?;
        let at = now();
        if before.expires_at.as_ref().is_some_and(|e| *e <= at) {
            return Ok(before);
        }
        sqlx::query("UPDATE sdk_keys SET expires_at = $1 WHERE id = $2")
            .bind(&at)
            .bind(id)
            .execute(w.c())
            .await?;
        let after = get_key(w.c(), id).await?;
        w.envs.insert(before.environment_id);
        w.audit(
            "revoke",
            "sdkKey",
            (id, &before.name),
            Some(&before),
            Some(&after),
        )
        .await?;
        w.commit().await?;
        Ok(after)
    }

    /// The SDK key whose raw secret is `raw`, if it works now: not revoked,
    /// not rotated past its grace period, and of an environment that still
    /// exists in the key's organization. Its environment is named as it is
    /// now (from the environment, project and organization rows), so a key
    /// can never speak for an environment of another tenant.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use bunting_origin::store::{Actor, SdkKeyKind, Store};
    /// let store = Store::open("sqlite::memory:").await.unwrap();
    /// let ana = Actor::new("ana");
    /// let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
    /// let p = store.create_project(&ana, org.id, "web", "Web").await.unwrap();
    /// let env = store.create_environment(&ana, p.id, "production", "Production").await.unwrap();
    /// let (key, raw) = store.create_sdk_key(&ana, env.id, SdkKeyKind::Server, "api").await.unwrap();
    /// let grant = store.authenticate_sdk_key(&raw).await.unwrap().unwrap();
    /// assert_eq!((grant.edge_env.as_str(), grant.kind), ("acme/web/production", SdkKeyKind::Server));
    /// store.revoke_sdk_key(&ana, key.id).await.unwrap();
    /// assert!(store.authenticate_sdk_key(&raw).await.unwrap().is_none());
    /// assert!(store.authenticate_sdk_key("bnt_server_unknown").await.unwrap().is_none());
    /// # });
    /// ```
    pub async fn authenticate_sdk_key(&self, raw: &str) -> Result<Option<SdkKeyGrant>> {
        let row = sqlx::query(
            "SELECT k.id, k.org_id, k.environment_id, k.kind, \
             o.key || '/' || p.key || '/' || e.key AS edge_env \
             FROM sdk_keys k JOIN environments e ON e.id = k.environment_id \
             JOIN projects p ON p.id = e.project_id \
             JOIN organizations o ON o.id = p.org_id AND o.id = k.org_id \
             WHERE k.hash = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)",
        )
        .bind(secret_hash(raw))
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(SdkKeyGrant {
                id: r.try_get("id")?,
                org_id: r.try_get("org_id")?,
                environment_id: r.try_get("environment_id")?,
                edge_env: r.try_get("edge_env")?,
                kind: SdkKeyKind::parse(&kind),
            })
        })
        .transpose()
    }

    /// SDK key `id`.
    pub async fn sdk_key(&self, id: i64) -> Result<SdkKeyRecord> {
        get_key(&mut *self.conn().await?, id).await
    }

    /// The SDK keys of environment `env_id` (expired ones included), by id.
    pub async fn sdk_keys(&self, env_id: i64) -> Result<Vec<SdkKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM sdk_keys WHERE environment_id = $1 ORDER BY id")
            .bind(env_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_row).collect()
    }
}

impl Write<'_> {
    async fn insert_sdk_key(
        &mut self,
        env_id: i64,
        kind: SdkKeyKind,
        name: &str,
        raw: Option<String>,
    ) -> Result<(SdkKeyRecord, String)> {
        let env = get_env(self.c(), env_id).await?;
        let project = get_project(self.c(), env.project_id).await?;
        let org = get_org(self.c(), project.org_id).await?;
        let edge_env = format!("{}/{}/{}", org.key, project.key, env.key);
        let raw = raw.unwrap_or_else(|| secret(&format!("bnt_{}_", kind.as_str())));
        let row = sqlx::query(
            "INSERT INTO sdk_keys (org_id, environment_id, edge_env, kind, name, hash, prefix, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(org.id)
        .bind(env_id)
        .bind(&edge_env)
        .bind(kind.as_str())
        .bind(name)
        .bind(secret_hash(&raw))
        .bind(shown_prefix(&raw))
        .bind(now())
        .fetch_one(self.c())
        .await
        .map_err(StoreError::on_write("sdk key", &shown_prefix(&raw)))?;
        let id: i64 = row.try_get("id")?;
        self.envs.insert(env_id);
        Ok((get_key(self.c(), id).await?, raw))
    }
}

async fn get_key(c: &mut sqlx::AnyConnection, id: i64) -> Result<SdkKeyRecord> {
    let r = sqlx::query("SELECT * FROM sdk_keys WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?;
    key_row(&r.ok_or_else(|| not_found("sdk key", id))?)
}
