//! Browser sessions at the HTTP layer: the session cookie, the sign-in
//! configuration, and the CSRF check of cookie-authenticated writes.
//!
//! The cookie `bunting_session` is `HttpOnly; Secure; SameSite=Lax;
//! Path=/` (browsers keep `Secure` cookies of `http://localhost` too, so the
//! embedded default works without TLS). A request without `Authorization`
//! is authenticated by it ([`super::auth::Principal`]); then a `POST`,
//! `PUT`, `PATCH` or `DELETE` must carry the session's CSRF token as
//! `X-CSRF-Token` (from `GET /api/v1/me`), and, when the browser sends
//! `Origin`, come from the origin's own address. Bearer-token requests are
//! not affected.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use bunting_wire::same_secret;

use super::ApiError;
use crate::oidc::OidcConfig;
use crate::store::sessions::{SessionLimits, csrf_token};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "bunting_session";
/// The cookie binding a sign-in at the identity provider to the browser
/// that started it (its `state`).
pub const LOGIN_COOKIE: &str = "bunting_login";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How people sign in.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The identity provider, if any.
    pub oidc: Option<OidcConfig>,
    /// Idle timeout and absolute lifetime of sessions.
    pub sessions: SessionLimits,
    /// The origin's public URL (`https://flags.example.com`): the address
    /// in sign-in links, and the only `Origin` accepted on
    /// cookie-authenticated writes. Without it, `Origin` must match `Host`.
    pub public_url: Option<String>,
    /// The e-mail of the administrator that bootstrap sign-in links sign in.
    pub bootstrap_email: String,
    /// How long a bootstrap sign-in link works.
    pub sign_in_link_ttl: Duration,
    /// How long a sign-in may take at the identity provider.
    pub login_ttl: Duration,
}

/// The default e-mail of the bootstrap administrator.
pub const DEFAULT_BOOTSTRAP_EMAIL: &str = "admin@localhost";

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            oidc: None,
            sessions: SessionLimits::default(),
            public_url: None,
            bootstrap_email: DEFAULT_BOOTSTRAP_EMAIL.into(),
            sign_in_link_ttl: Duration::from_secs(15 * 60),
            login_ttl: Duration::from_secs(10 * 60),
        }
    }
}

/// The value of cookie `name` in `headers`, if sent.
///
/// ```
/// use axum::http::HeaderMap;
/// use bunting_origin::api::session::cookie;
/// let mut h = HeaderMap::new();
/// h.insert("cookie", "a=1; bunting_session=s3cret".parse().unwrap());
/// assert_eq!(cookie(&h, "bunting_session"), Some("s3cret"));
/// assert_eq!(cookie(&h, "b"), None);
/// ```
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: `name=value` for `max_age` at `path`, `HttpOnly;
/// Secure; SameSite=Lax`; `max_age` zero removes the cookie.
///
/// ```
/// use std::time::Duration;
/// use bunting_origin::api::session::set_cookie;
/// assert_eq!(set_cookie("bunting_session", "x", "/", Duration::from_secs(60)).to_str().unwrap(),
///            "bunting_session=x; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax");
/// ```
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        max_age.as_secs()
    ))
    .expect("cookie values are visible ASCII")
}

/// Whether `method` changes something (and so needs the CSRF checks).
fn unsafe_method(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `scheme://host[:port]` of `url`, lowercase, for comparison with
/// `Origin`.
fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

/// The CSRF checks of a cookie-authenticated request with session `sid`:
/// an unsafe method needs `X-CSRF-Token` equal to the session's token and,
/// when `Origin` is sent, the origin's own address. 403 otherwise.
pub fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    sid: &str,
    config: &AuthConfig,
) -> Result<(), ApiError> {
    if !unsafe_method(method) {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null").to_ascii_lowercase();
        let allowed = match &config.public_url {
            Some(public) => origin_of(public).is_some_and(|o| o == origin),
            None => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|host| {
                    let host = host.to_ascii_lowercase();
                    origin == format!("http://{host}") || origin == format!("https://{host}")
                }),
        };
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                format!(
                    "cross-site request refused: Origin {origin} is not this server's; \
                 a signed-in browser may write only from the origin's own pages"
                ),
            ));
        }
    }
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match sent {
        Some(t) if same_secret(t, &csrf_token(sid)) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "the X-CSRF-Token header does not match this session's token (GET /api/v1/me gives it)",
        )),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "a signed-in browser's POST, PUT, PATCH and DELETE need the X-CSRF-Token header \
             (its value is csrfToken of GET /api/v1/me); API clients send Authorization: Bearer",
        )),
    }
}
