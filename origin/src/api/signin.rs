//! Signing in and out in a browser (plain redirects, outside `/api/v1` and
//! its OpenAPI document):
//!
//! - `GET /auth/login`: redirects to the identity provider (authorization
//!   code flow with PKCE S256, `state` and `nonce`; the sign-in is kept in
//!   the store under its `state`, which a short-lived cookie binds to this
//!   browser);
//! - `GET /auth/callback`: the provider's redirect back: exchanges the
//!   code, verifies the ID token, records the sign-in
//!   ([`crate::store::Store::sign_in`]), starts a session and redirects to
//!   `/`;
//! - `GET /auth/bootstrap?token=…`: a one-time sign-in link of the
//!   instance's administrator (printed by `bunting serve` and `bunting
//!   sign-in-link`); starts an administrator session and redirects to `/`;
//! - `POST /auth/logout`: ends the session (with the session's CSRF token,
//!   like every cookie-authenticated write) and removes the cookie.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::session::{CSRF_HEADER, LOGIN_COOKIE, SESSION_COOKIE, check_csrf, cookie, set_cookie};
use super::{ApiError, ApiResult, AppState};
use crate::oidc::OidcError;
use crate::store::User;
use crate::store::sessions::csrf_token;

/// The browser sign-in routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/bootstrap", get(bootstrap))
        .route("/auth/logout", post(logout))
}

/// `303 See Other` to `location`.
fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Starts a session for `user`: the cookie, the CSRF token (also as
/// `X-CSRF-Token`) and a redirect to `/`.
async fn start_session(state: &AppState, user: &User) -> ApiResult<Response> {
    let limits = state.config.auth.sessions;
    let sid = state.store.create_session(user, limits).await?;
    tracing::info!(user = %user.email, "signed in");
    let mut r = redirect("/");
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &sid, "/", limits.absolute),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/auth", std::time::Duration::ZERO),
    );
    h.insert(
        CSRF_HEADER,
        HeaderValue::from_str(&csrf_token(&sid)).expect("hex"),
    );
    Ok(r)
}

/// Redirects the browser to the identity provider.
async fn login(State(state): State<AppState>) -> ApiResult<Response> {
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::not_found(
            "an identity provider (none is configured: use the sign-in link `bunting serve` \
             prints, or `bunting sign-in-link`)",
        ));
    };
    let auth = oidc.authorize().await.map_err(provider_unavailable)?;
    let ttl = state.config.auth.login_ttl;
    state
        .store
        .save_login(&auth.state, &auth.pending, ttl)
        .await?;
    let mut r = redirect(auth.url.as_str());
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &auth.state, "/auth", ttl),
    );
    Ok(r)
}

fn provider_unavailable(e: OidcError) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, "identity_provider", format!("{e}"))
}

/// The provider's answer.
#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// The issuer (RFC 9207), when the provider sends it.
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The provider's redirect back: code exchange, ID-token checks, sign-in.
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> ApiResult<Response> {
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::not_found("an identity provider"));
    };
    if let Some(error) = &q.error {
        return Err(ApiError::unauthorized(format!(
            "the identity provider refused the sign-in: {error} {}",
            q.error_description.as_deref().unwrap_or_default()
        )));
    }
    if let Some(iss) = &q.iss
        && iss.trim_end_matches('/') != oidc.config().issuer
    {
        return Err(ApiError::bad_request(format!(
            "this answer comes from another identity provider ({iss})"
        )));
    }
    let (Some(code), Some(st)) = (&q.code, &q.state) else {
        return Err(ApiError::bad_request(
            "the callback needs the provider's code and state parameters",
        ));
    };
    // The sign-in must have started in this browser (no login CSRF), and
    // is taken once (a replayed state finds nothing).
    if cookie(&headers, LOGIN_COOKIE) != Some(st.as_str()) {
        return Err(ApiError::bad_request(
            "this sign-in did not start in this browser (or took too long): start again at /auth/login",
        ));
    }
    let Some(pending) = state.store.take_login(st).await? else {
        return Err(ApiError::bad_request(
            "unknown, used or expired sign-in state: start again at /auth/login",
        ));
    };
    let claims = oidc.finish(code, &pending).await.map_err(|e| match e {
        OidcError::Provider { .. } => provider_unavailable(e),
        OidcError::CodeRefused(_) | OidcError::InvalidToken(_) => {
            tracing::warn!(error = %e, "sign-in refused");
            ApiError::unauthorized(format!("sign-in refused: {e}"))
        }
    })?;
    let user = state
        .store
        .sign_in(&claims.email, &claims.name, &claims.groups)
        .await?;
    start_session(&state, &user).await
}

/// The query of a sign-in link.
#[derive(Debug, Deserialize)]
struct BootstrapQuery {
    token: Option<String>,
}

/// A one-time sign-in link of the instance's administrator.
async fn bootstrap(
    State(state): State<AppState>,
    Query(q): Query<BootstrapQuery>,
) -> ApiResult<Response> {
    let token = q.token.unwrap_or_default();
    let Some(email) = state.store.redeem_sign_in_link(&token).await? else {
        return Err(ApiError::unauthorized(
            "this sign-in link was used already, has expired or is unknown: get a new one \
             with `bunting sign-in-link` or by restarting `bunting serve`",
        ));
    };
    let user = state.store.admin_user(&email).await?;
    start_session(&state, &user).await
}

/// Ends the caller's session and removes its cookie (204 also without a
/// session: signing out twice is no error).
async fn logout(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        check_csrf(&method, &headers, sid, &state.config.auth)?;
        state.store.end_session(sid).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", std::time::Duration::ZERO),
    );
    Ok(r)
}
