//! Browser sessions, pending OpenID Connect sign-ins and one-time sign-in
//! links. Only SHA-256 hashes of their secrets are stored, so a copy of the
//! database signs nobody in.
//!
//! A session ends at its absolute lifetime, after its idle timeout without
//! a request, at sign-out, or when its user is disabled. Its CSRF token
//! ([`csrf_token`]) is derived from the session id, so it needs no column
//! and a leaked database row does not reveal it.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use bunting_origin::store::Store;
//! use bunting_origin::store::sessions::SessionLimits;
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let limits = SessionLimits { idle: Duration::from_secs(60), absolute: Duration::from_secs(3600) };
//! let link = store.create_sign_in_link("admin@localhost", Duration::from_secs(900)).await.unwrap();
//! assert_eq!(store.redeem_sign_in_link(&link).await.unwrap().as_deref(), Some("admin@localhost"));
//! assert_eq!(store.redeem_sign_in_link(&link).await.unwrap(), None); // once
//! let admin = store.admin_user("admin@localhost").await.unwrap();
//! let session = store.create_session(&admin, limits).await.unwrap();
//! assert_eq!(store.session_user(&session, limits).await.unwrap().unwrap().id, admin.id);
//! assert!(store.end_session(&session).await.unwrap());
//! assert!(store.session_user(&session, limits).await.unwrap().is_none());
//! # });
//! ```

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::access::{secret, secret_hash};
use super::people::{get_user, normalize_email};
use super::rows::stored_time;
use super::{Result, Store, StoreError, User};

/// How long a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused for this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute: Duration,
}

impl Default for SessionLimits {
    /// 8 hours idle, 7 days in all.
    fn default() -> SessionLimits {
        SessionLimits {
            idle: Duration::from_secs(8 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What a sign-in at the identity provider left to check at its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier to send with the code.
    pub pkce_verifier: String,
}

/// The CSRF token of session `raw`: what cookie-authenticated writes send
/// as `X-CSRF-Token` (hex of SHA-256 over a label and the session id; not
/// stored).
///
/// ```
/// use bunting_origin::store::sessions::csrf_token;
/// assert_eq!(csrf_token("s1"), csrf_token("s1"));
/// assert_ne!(csrf_token("s1"), csrf_token("s2"));
/// assert_eq!(csrf_token("s1").len(), 64);
/// ```
pub fn csrf_token(raw: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bunting csrf\0");
    h.update(raw.as_bytes());
    hex::encode(h.finalize())
}

fn at(offset: Duration) -> String {
    stored_time(time::OffsetDateTime::now_utc() + offset)
}

fn ago(offset: Duration) -> String {
    stored_time(time::OffsetDateTime::now_utc() - offset)
}

impl Store {
    /// Starts a session for `user` and returns its id (the cookie's value;
    /// only its hash is stored). Ended sessions and stale sign-ins are
    /// purged on the way.
    pub async fn create_session(&self, user: &User, limits: SessionLimits) -> Result<String> {
        let now = at(Duration::ZERO);
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(&now)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM login_states WHERE expires_at <= $1")
            .bind(&now)
            .execute(&self.pool)
            .await?;
        let raw = secret("bses_");
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $3, $4)",
        )
        .bind(secret_hash(&raw))
        .bind(user.id)
        .bind(&now)
        .bind(at(limits.absolute))
        .execute(&self.pool)
        .await?;
        Ok(raw)
    }

    /// The user of live session `raw`, if any, recording the use; a
    /// session past its idle timeout or absolute lifetime is deleted and
    /// answers `None`, as does one of a disabled user.
    pub async fn session_user(&self, raw: &str, limits: SessionLimits) -> Result<Option<User>> {
        let hash = secret_hash(raw);
        let row = sqlx::query(
            "SELECT s.user_id, s.last_seen_at, s.expires_at, u.disabled_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let now = at(Duration::ZERO);
        let last_seen: String = row.try_get("last_seen_at")?;
        let expires: String = row.try_get("expires_at")?;
        let disabled: Option<String> = row.try_get("disabled_at")?;
        if expires <= now || last_seen <= ago(limits.idle) || disabled.is_some() {
            self.end_session(raw).await?;
            return Ok(None);
        }
        // Record the use at most every idle/8 (and every minute at most),
        // so a busy session does not write on every request.
        if last_seen <= ago((limits.idle / 8).min(Duration::from_secs(60))) {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(&now)
                .bind(&hash)
                .execute(&self.pool)
                .await?;
        }
        let mut c = self.conn().await?;
        Ok(Some(get_user(&mut c, row.try_get("user_id")?).await?))
    }

    /// Ends session `raw` (sign-out); whether it existed.
    pub async fn end_session(&self, raw: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(secret_hash(raw))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Keeps a sign-in sent to the identity provider under its `state`
    /// (hashed) for `ttl`.
    pub async fn save_login(
        &self,
        state: &str,
        pending: &PendingLogin,
        ttl: Duration,
    ) -> Result<()> {
        // Sign-ins abandoned at the provider do not pile up.
        sqlx::query("DELETE FROM login_states WHERE expires_at <= $1")
            .bind(at(Duration::ZERO))
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO login_states (state_hash, nonce, pkce_verifier, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secret_hash(state))
        .bind(&pending.nonce)
        .bind(&pending.pkce_verifier)
        .bind(at(Duration::ZERO))
        .bind(at(ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the sign-in of `state` (once: a replayed `state` finds
    /// nothing), unless it expired.
    pub async fn take_login(&self, state: &str) -> Result<Option<PendingLogin>> {
        let row = sqlx::query(
            "DELETE FROM login_states WHERE state_hash = $1 \
             RETURNING nonce, pkce_verifier, expires_at",
        )
        .bind(secret_hash(state))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires: String = row.try_get("expires_at")?;
        if expires <= at(Duration::ZERO) {
            return Ok(None);
        }
        Ok(Some(PendingLogin {
            nonce: row.try_get("nonce")?,
            pkce_verifier: row.try_get("pkce_verifier")?,
        }))
    }

    /// A one-time sign-in link's token for the administrator `email`,
    /// valid for `ttl` (only its hash is stored).
    pub async fn create_sign_in_link(&self, email: &str, ttl: Duration) -> Result<String> {
        let email = normalize_email("email", email).map_err(|p| StoreError::Invalid(vec![*p]))?;
        let raw = secret("bsil_");
        sqlx::query(
            "INSERT INTO bootstrap_links (token_hash, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(secret_hash(&raw))
        .bind(&email)
        .bind(at(Duration::ZERO))
        .bind(at(ttl))
        .execute(&self.pool)
        .await?;
        Ok(raw)
    }

    /// Uses sign-in link `raw`: its e-mail, once, before it expires;
    /// `None` afterwards or for an unknown link.
    pub async fn redeem_sign_in_link(&self, raw: &str) -> Result<Option<String>> {
        let now = at(Duration::ZERO);
        let row = sqlx::query(
            "UPDATE bootstrap_links SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING email",
        )
        .bind(&now)
        .bind(secret_hash(raw))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get("email")?)).transpose()
    }
}
