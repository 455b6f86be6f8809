//! API tokens: service tokens (a role at an organization, project or
//! environment scope) and personal tokens (acting as their user, capped by
//! a role), with an optional expiry; `lastUsedAt` is kept by
//! [`Store::authenticate`]. Only SHA-256 hashes of the secrets are stored.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, Role, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let org = store.create_org(&Actor::new("root"), "acme", "Acme").await.unwrap();
//! let (token, raw) = store
//!     .create_token(&Actor::new("root").in_org(org.id), org.id, "ci", Role::Editor)
//!     .await
//!     .unwrap();
//! assert!(raw.starts_with("bnt_api_"));
//! let found = store.authenticate(&raw).await.unwrap().unwrap();
//! assert_eq!((found.id, found.role.as_str()), (token.id, "editor"));
//! assert!(found.last_used_at.is_some());
//! # });
//! ```

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use utoipa::ToSchema;

use super::access::{secret, secret_hash, shown_prefix};
use super::roles::{role_permissions, row_scope};
use super::rows::{get_org, not_found, now, stored_time};
use super::write::Write;
use super::{Actor, Problem, Result, Role, Scope, Store, StoreError};

/// What kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A machine's token (CI, GitOps, scripts): a role at a scope.
    Service,
    /// A person's token: acts as its user, never beyond the user's rights
    /// (and, if it names one, never beyond its role).
    Personal,
}

/// The longest lifetime of a token, in days (two years).
pub const MAX_TOKEN_DAYS: u32 = 730;

/// A stored API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// Row id.
    pub id: i64,
    /// The organization it acts in.
    pub org_id: i64,
    /// A label.
    pub name: String,
    /// Service or personal.
    pub kind: TokenKind,
    /// Its role (built-in or custom): a service token's grant; a personal
    /// token's cap on its user's rights.
    pub role: String,
    /// A personal token's user (e-mail).
    pub user: Option<String>,
    /// The project a service token is limited to, if any.
    pub project: Option<String>,
    /// The environment (of `project`) a service token is limited to, if
    /// any.
    pub environment: Option<String>,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    /// When it was made.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// When it stops working, if it does.
    pub expires_at: Option<String>,
    /// When it was last used (kept to the minute).
    pub last_used_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// A personal token's user id.
    #[serde(skip)]
    pub user_id: Option<i64>,
    /// Where a service token's role applies.
    #[serde(skip)]
    #[schema(ignore)]
    pub scope: Option<Scope>,
}

/// A token to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// A label.
    pub name: String,
    /// Service or personal.
    pub kind: TokenKind,
    /// Its role (built-in or a custom role of the organization).
    pub role: String,
    /// Where a service token's role applies (ignored for personal ones).
    pub scope: Scope,
    /// A personal token's user.
    pub user_id: Option<i64>,
    /// Days until it expires (1 to [`MAX_TOKEN_DAYS`]); none: never.
    pub expires_in_days: Option<u32>,
}

const TOKEN_SELECT: &str = "SELECT t.*, u.email AS user_email, p.key AS project_key, \
     e.key AS environment_key FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id \
     LEFT JOIN projects p ON p.id = t.project_id LEFT JOIN environments e ON e.id = t.environment_id";

fn token_row(r: &AnyRow) -> Result<TokenRecord> {
    let kind: String = r.try_get("kind")?;
    Ok(TokenRecord {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        kind: if kind == "personal" {
            TokenKind::Personal
        } else {
            TokenKind::Service
        },
        role: r.try_get("role")?,
        user: r.try_get("user_email")?,
        project: r.try_get("project_key")?,
        environment: r.try_get("environment_key")?,
        prefix: r.try_get("prefix")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used")?,
        revoked_at: r.try_get("revoked_at")?,
        user_id: r.try_get("user_id")?,
        scope: Some(row_scope(r)?),
    })
}

async fn get_token(c: &mut AnyConnection, id: i64) -> Result<TokenRecord> {
    let r = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(c)
        .await?;
    token_row(&r.ok_or_else(|| not_found("token", id))?)
}

/// `now + days` in the stored format.
fn days_later(days: u32) -> String {
    stored_time(time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)))
}

impl Store {
    /// Makes a service token with built-in `role` in all of organization
    /// `org_id`, without expiry; returns its record and the raw secret
    /// (shown once).
    pub async fn create_token(
        &self,
        actor: &Actor,
        org_id: i64,
        name: &str,
        role: Role,
    ) -> Result<(TokenRecord, String)> {
        let new = NewToken {
            name: name.into(),
            kind: TokenKind::Service,
            role: role.as_str().into(),
            scope: Scope::Org { org: org_id },
            user_id: None,
            expires_in_days: None,
        };
        self.make_token(actor, &new).await
    }

    /// Makes token `new` in the organization of its scope; returns its
    /// record and the raw secret (shown once). The error names every
    /// problem (unknown role, lifetime out of range, a personal token
    /// without a user).
    pub async fn make_token(&self, actor: &Actor, new: &NewToken) -> Result<(TokenRecord, String)> {
        let org_id = new.scope.org();
        let mut problems = Vec::new();
        if new.name.trim().is_empty() || new.name.len() > 200 {
            problems.push(Problem::new("name", "a token's name is 1–200 characters"));
        }
        if let Some(d) = new.expires_in_days
            && !(1..=MAX_TOKEN_DAYS).contains(&d)
        {
            problems.push(Problem::new(
                "expiresInDays",
                format!("{d} is out of range: a token lives 1 to {MAX_TOKEN_DAYS} days"),
            ));
        }
        if new.kind == TokenKind::Personal && new.user_id.is_none() {
            problems.push(Problem::new(
                "kind",
                "a personal token belongs to a signed-in user; this caller is not one",
            ));
        }
        self.write(actor, async |w| {
            get_org(w.c(), org_id).await?;
            if role_permissions(w.c(), org_id, &new.role).await?.is_none() {
                problems.push(Problem::new(
                    "role",
                    format!("no role {:?} in this organization", new.role),
                ));
            }
            if !problems.is_empty() {
                return Err(StoreError::Invalid(problems));
            }
            let (project, environment) = match (new.kind, new.scope) {
                (TokenKind::Personal, _) | (_, Scope::Org { .. }) => (None, None),
                (_, Scope::Project { project, .. }) => (Some(project), None),
                (
                    _,
                    Scope::Environment {
                        project,
                        environment,
                        ..
                    },
                ) => (Some(project), Some(environment)),
            };
            let raw = secret("bnt_api_");
            let row = sqlx::query(
                "INSERT INTO api_tokens (org_id, name, role, hash, prefix, created_at, created_by, kind, \
                 user_id, project_id, environment_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            )
            .bind(org_id)
            .bind(&new.name)
            .bind(&new.role)
            .bind(secret_hash(&raw))
            .bind(shown_prefix(&raw))
            .bind(now())
            .bind(&actor.name)
            .bind(match new.kind {
                TokenKind::Service => "service",
                TokenKind::Personal => "personal",
            })
            .bind(new.user_id.filter(|_| new.kind == TokenKind::Personal))
            .bind(project)
            .bind(environment)
            .bind(new.expires_in_days.map(days_later))
            .fetch_one(w.c())
            .await?;
            let t = get_token(w.c(), row.try_get("id")?).await?;
            w.audit("create", "token", (t.id, &t.name), None::<&()>, Some(&t))
                .await?;
            Ok((t, raw))
        })
        .await
    }

    /// The tokens of organization `org_id`, revoked and expired ones
    /// included, by id.
    pub async fn tokens(&self, org_id: i64) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.org_id = $1 ORDER BY t.id"))
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_row).collect()
    }

    /// Token `id`.
    pub async fn token(&self, id: i64) -> Result<TokenRecord> {
        get_token(&mut *self.conn().await?, id).await
    }

    /// Revokes token `id`; it stops working at once. Revoking a revoked
    /// token changes nothing and audits nothing: it returns the record as
    /// it is (revocation is idempotent, as in RFC 7009).
    pub async fn revoke_token(&self, actor: &Actor, id: i64) -> Result<TokenRecord> {
        self.write(actor, async |w| {
            let before = get_token(w.c(), id).await?;
            if before.revoked_at.is_some() {
                return Ok(before);
            }
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now())
            .bind(id)
            .execute(w.c())
            .await?;
            let after = get_token(w.c(), id).await?;
            w.audit(
                "revoke",
                "token",
                (id, &before.name),
                Some(&before),
                Some(&after),
            )
            .await?;
            Ok(after)
        })
        .await
    }

    /// The live token whose secret is `raw`, if any: not revoked, not
    /// expired, and (a personal token) of a user who is not disabled. Records its use (`lastUsedAt`, at most once a minute, so a
    /// busy token does not write on every request).
    pub async fn authenticate(&self, raw: &str) -> Result<Option<TokenRecord>> {
        let at = now();
        let row = sqlx::query(&format!(
            "{TOKEN_SELECT} WHERE t.hash = $1 AND t.revoked_at IS NULL \
             AND (t.expires_at IS NULL OR t.expires_at > $2) AND u.disabled_at IS NULL"
        ))
        .bind(secret_hash(raw))
        .bind(&at)
        .fetch_optional(&self.pool)
        .await?;
        let Some(mut token) = row.as_ref().map(token_row).transpose()? else {
            return Ok(None);
        };
        let minute_ago = stored_time(time::OffsetDateTime::now_utc() - time::Duration::minutes(1));
        if token.last_used_at.as_ref().is_none_or(|t| *t < minute_ago) {
            sqlx::query("UPDATE api_tokens SET last_used = $1 WHERE id = $2")
                .bind(&at)
                .bind(token.id)
                .execute(&self.pool)
                .await?;
            token.last_used_at = Some(at);
        }
        Ok(Some(token))
    }
}

impl Write<'_> {
    /// The tokens of organization `org_id` (for the audit of its deletion).
    pub(super) async fn org_tokens(&mut self, org_id: i64) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(&format!("{TOKEN_SELECT} WHERE t.org_id = $1 ORDER BY t.id"))
            .bind(org_id)
            .fetch_all(self.c())
            .await?;
        rows.iter().map(token_row).collect()
    }
}
