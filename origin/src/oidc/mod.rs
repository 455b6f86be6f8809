//! OpenID Connect sign-in, as a relying party: the authorization code flow
//! with PKCE (S256), `state` and `nonce`.
//!
//! - Discovery: `{issuer}/.well-known/openid-configuration`, fetched at the
//!   first sign-in and kept (its `issuer` must be the configured one).
//! - Keys: the provider's JWKS, kept and fetched again when a token names a
//!   key id it does not hold (key rotation), at most every few seconds.
//! - The ID token from the token endpoint is checked by `verify`:
//!   signature (RS*, PS*, ES256/384, EdDSA), `iss`, `aud`/`azp`, `nonce`,
//!   `exp`/`nbf`/`iat`; then the e-mail and groups claims are read
//!   ([`person`]).
//!
//! JSON Web Tokens come from `jsonwebtoken` (with its `ring` backend, the
//! one rustls already builds here); discovery and JWKS are the few lines
//! below, over the `reqwest` client the origin already has.
//!
//! ```
//! use bunting_origin::oidc::{OidcConfig, pkce_challenge};
//! let config = OidcConfig::new("https://id.example.com", "bunting", "https://flags.example.com/auth/callback");
//! assert_eq!(config.scopes, ["openid", "email", "profile"]);
//! assert_eq!((config.email_claim.as_str(), config.groups_claim.as_str()), ("email", "groups"));
//! // RFC 7636, appendix B.
//! assert_eq!(pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
//!            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
//! ```

mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::store::sessions::PendingLogin;

pub use verify::person;

/// How an identity provider is used.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The issuer URL (discovery is `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (sent with HTTP Basic to the token endpoint);
    /// none for a public client, which PKCE protects.
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: `{public URL}/auth/callback`.
    pub redirect_url: String,
    /// Scopes asked for (`openid` is added when missing).
    pub scopes: Vec<String>,
    /// The claim holding the e-mail address [default: `email`].
    pub email_claim: String,
    /// The claim holding the groups (teams map from them) [default: `groups`].
    pub groups_claim: String,
    /// Refuse a sign-in whose `email_verified` is not true.
    pub require_verified_email: bool,
    /// Clock skew allowed on the token's times [default: 60 s].
    pub leeway: Duration,
}

impl OidcConfig {
    /// A configuration with the defaults: scopes `openid email profile`,
    /// claims `email` and `groups`, no secret, `email_verified` not
    /// required, 60 s leeway.
    pub fn new(issuer: &str, client_id: &str, redirect_url: &str) -> OidcConfig {
        OidcConfig {
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret: None,
            redirect_url: redirect_url.into(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            email_claim: "email".into(),
            groups_claim: "groups".into(),
            require_verified_email: false,
            leeway: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for OidcConfig {
    /// Everything but the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("email_claim", &self.email_claim)
            .field("groups_claim", &self.groups_claim)
            .field("require_verified_email", &self.require_verified_email)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered nonsense.
    #[error("the identity provider {url}: {message}")]
    Provider {
        /// What was asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The token endpoint refused the code (e.g. `invalid_grant`: a code
    /// used twice or expired).
    #[error("the identity provider refused the authorization code: {0}")]
    CodeRefused(String),
    /// The ID token failed a check.
    #[error("{0}")]
    InvalidToken(String),
}

/// The person an ID token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// E-mail (the configured claim).
    pub email: String,
    /// Display name (`name`, `preferred_username` or the e-mail).
    pub name: String,
    /// Groups (the configured claim).
    pub groups: Vec<String>,
    /// The provider's subject id.
    pub subject: String,
}

/// A sign-in to send the browser to.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The provider's authorization URL with every parameter.
    pub url: Url,
    /// The `state` parameter (the key of `pending`).
    pub state: String,
    /// What the callback needs.
    pub pending: PendingLogin,
}

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Default)]
struct KeyCache {
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
}

/// Shortest time between two JWKS fetches caused by unknown key ids.
const JWKS_REFRESH: Duration = Duration::from_secs(5);

/// A relying party of one provider (discovery and keys cached). Cheap to
/// share in an `Arc`.
pub struct OidcClient {
    config: OidcConfig,
    http: reqwest::Client,
    metadata: RwLock<Option<Metadata>>,
    keys: RwLock<KeyCache>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// A random URL-safe string of `bytes` random bytes.
fn random(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the operating system's random source");
    URL_SAFE_NO_PAD.encode(b)
}

/// The S256 code challenge of PKCE `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn provider_error(url: &str, message: impl std::fmt::Display) -> OidcError {
    OidcError::Provider {
        url: url.to_string(),
        message: message.to_string(),
    }
}

impl OidcClient {
    /// A client of the provider `config` names (nothing fetched yet).
    pub fn new(config: OidcConfig) -> Arc<OidcClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Arc::new(OidcClient {
            config,
            http,
            metadata: RwLock::new(None),
            keys: RwLock::new(KeyCache::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let r = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| provider_error(url, e))?;
        if !r.status().is_success() {
            return Err(provider_error(url, format!("answered {}", r.status())));
        }
        r.json().await.map_err(|e| provider_error(url, e))
    }

    async fn metadata(&self) -> Result<Metadata, OidcError> {
        if let Some(m) = self.metadata.read().await.clone() {
            return Ok(m);
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
        let m: Metadata = serde_json::from_value(self.get_json(&url).await?)
            .map_err(|e| provider_error(&url, format!("not a provider configuration: {e}")))?;
        if m.issuer.trim_end_matches('/') != self.config.issuer {
            return Err(provider_error(
                &url,
                format!(
                    "names issuer {:?}, not the configured {:?}",
                    m.issuer, self.config.issuer
                ),
            ));
        }
        *self.metadata.write().await = Some(m.clone());
        Ok(m)
    }

    /// The provider's signing keys; fetched when none are known, or again
    /// (`refresh`) when a token names a key id not among them.
    async fn keys(&self, refresh: bool) -> Result<Vec<Jwk>, OidcError> {
        {
            let cache = self.keys.read().await;
            let recent = cache.fetched.is_some_and(|t| t.elapsed() < JWKS_REFRESH);
            if cache.fetched.is_some() && (!refresh || recent) {
                return Ok(cache.keys.clone());
            }
        }
        let url = self.metadata().await?.jwks_uri;
        let set = self.get_json(&url).await?;
        // Keys one by one: one of a kind this client cannot read (or an
        // encryption key) must not hide the others.
        let keys: Vec<Jwk> = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| provider_error(&url, "not a JWK set"))?
            .iter()
            .filter(|k| k.get("use").and_then(Value::as_str) != Some("enc"))
            .filter_map(|k| serde_json::from_value(k.clone()).ok())
            .collect();
        let mut cache = self.keys.write().await;
        *cache = KeyCache {
            keys: keys.clone(),
            fetched: Some(Instant::now()),
        };
        Ok(keys)
    }

    /// A new sign-in: the provider's authorization URL with fresh `state`,
    /// `nonce` and PKCE challenge (the caller keeps `pending` under
    /// `state` until the callback).
    pub async fn authorize(&self) -> Result<Authorization, OidcError> {
        let m = self.metadata().await?;
        let state = random(32);
        let pending = PendingLogin {
            nonce: random(32),
            pkce_verifier: random(48),
        };
        let mut url = Url::parse(&m.authorization_endpoint)
            .map_err(|e| provider_error(&m.authorization_endpoint, e))?;
        let mut scopes = self.config.scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_url)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &pkce_challenge(&pending.pkce_verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(Authorization {
            url,
            state,
            pending,
        })
    }

    /// Exchanges `code` at the token endpoint (with the PKCE verifier of
    /// `pending`), verifies the ID token and reads the person from it.
    pub async fn finish(&self, code: &str, pending: &PendingLogin) -> Result<Claims, OidcError> {
        let m = self.metadata().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("code_verifier", pending.pkce_verifier.as_str()),
        ];
        let mut request = self.http.post(&m.token_endpoint);
        match &self.config.client_secret {
            // client_secret_basic: both form-urlencoded first (RFC 6749 §2.3.1).
            Some(secret) => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(enc(&self.config.client_id), Some(enc(secret)));
            }
            None => form.push(("client_id", self.config.client_id.as_str())),
        }
        let r = request
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| provider_error(&m.token_endpoint, e))?;
        let status = r.status();
        let body: Value = r
            .json()
            .await
            .map_err(|e| provider_error(&m.token_endpoint, e))?;
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("error");
            let description = body["error_description"].as_str().unwrap_or_default();
            return Err(OidcError::CodeRefused(
                format!("{error} {description}").trim().into(),
            ));
        }
        let token = body["id_token"]
            .as_str()
            .ok_or_else(|| provider_error(&m.token_endpoint, "answered no id_token"))?;
        let claims = self.verify(token, &m.issuer, &pending.nonce).await?;
        verify::person(
            &claims,
            &self.config.email_claim,
            &self.config.groups_claim,
            self.config.require_verified_email,
        )
    }

    async fn verify(
        &self,
        token: &str,
        issuer: &str,
        nonce: &str,
    ) -> Result<serde_json::Map<String, Value>, OidcError> {
        let (kid, alg) = verify::header(token)?;
        let mut keys = self.keys(false).await?;
        if verify::pick(&keys, kid.as_deref()).is_none() {
            keys = self.keys(true).await?;
        }
        let key = verify::pick(&keys, kid.as_deref()).ok_or_else(|| {
            OidcError::InvalidToken(format!(
                "the ID token is signed with a key the provider does not publish ({})",
                kid.as_deref().unwrap_or("no kid")
            ))
        })?;
        verify::verify(
            token,
            alg,
            key,
            &verify::Expected {
                issuer,
                client_id: &self.config.client_id,
                nonce,
                leeway: self.config.leeway,
            },
        )
    }
}
