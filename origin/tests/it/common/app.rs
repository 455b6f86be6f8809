//! The management API under test, called in process: each request goes to
//! [`bunting_origin::api::router`] through `tower::ServiceExt::oneshot`, no
//! socket, and each response is checked against `docs/openapi.json`
//! ([`super::schema::oneshot`]) before the test sees it.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header, request};
use bunting_origin::api::{AppState, ServeConfig, router};
use bunting_origin::store::Store;
use serde_json::Value;
use tower::ServiceExt;

/// The bootstrap administrator's token of [`TestApp::root`].
pub(crate) const ROOT: &str = "root-secret-token";

/// Where the API lives; test paths are relative to it.
const PREFIX: &str = "/api/v1";

/// A client of one router, sending as one bearer token (or none).
#[derive(Clone)]
pub(crate) struct TestApp {
    router: Router,
    token: Option<String>,
    /// Whether responses are checked against the document.
    checked: bool,
}

/// A response, read whole.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub headers: HeaderMap,
    /// The body as text (lossy UTF-8).
    pub text: String,
    /// The body as JSON; a body that is not JSON is the text as a string,
    /// an empty one `Null`.
    pub body: Value,
}

impl Reply {
    /// The value of header `name`, if sent.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// The media type sent (`Content-Type`), or "".
    pub(crate) fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }

    /// (status, ETag, body): what most tests look at.
    pub(crate) fn parts(self) -> (StatusCode, Option<String>, Value) {
        (self.status, self.etag, self.body)
    }
}

impl TestApp {
    /// A client of `router(state)` sending no token.
    pub(crate) fn new(state: AppState) -> TestApp {
        TestApp {
            router: router(state),
            token: None,
            checked: true,
        }
    }

    /// A client of a router over `store` whose administrator token is
    /// [`ROOT`], sending that token.
    pub(crate) fn root(store: Store) -> TestApp {
        TestApp::new(AppState::new(
            store,
            ServeConfig {
                admin_token: Some(ROOT.into()),
                ..ServeConfig::default()
            },
        ))
        .as_token(ROOT)
    }

    /// The same router, sending `token`.
    pub(crate) fn as_token(&self, token: &str) -> TestApp {
        TestApp {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The same router, sending no token.
    pub(crate) fn anonymous(&self) -> TestApp {
        TestApp {
            token: None,
            ..self.clone()
        }
    }

    /// The same client, not checking responses against the document: for
    /// data the document no longer admits (a key made before keys were
    /// limited), which the origin must still serve.
    pub(crate) fn unchecked(&self) -> TestApp {
        TestApp {
            checked: false,
            ..self.clone()
        }
    }

    /// A request to `PREFIX + path` carrying this client's token.
    pub(crate) fn request(&self, method: Method, path: &str) -> request::Builder {
        let r = Request::builder()
            .method(method)
            .uri(format!("{PREFIX}{path}"));
        match &self.token {
            Some(t) => r.header(header::AUTHORIZATION, format!("Bearer {t}")),
            None => r,
        }
    }

    /// Sends `request` as it is, checks the response against the document
    /// and reads it.
    pub(crate) async fn send(&self, request: Request<Body>) -> Reply {
        let response = if self.checked {
            super::schema::oneshot(self.router.clone(), request).await
        } else {
            self.router
                .clone()
                .oneshot(request)
                .await
                .expect("the router answers")
        };
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the response body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        let etag = parts
            .headers
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_string());
        Reply {
            status: parts.status,
            etag,
            headers: parts.headers,
            text,
            body,
        }
    }

    /// `method path` with `headers` and, if any, the JSON `body`.
    pub(crate) async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut r = self.request(method, path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let body = match body {
            Some(b) => {
                let text = b.to_string();
                r = r
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CONTENT_LENGTH, text.len());
                Body::from(text)
            }
            None => Body::empty(),
        };
        self.send(r.body(body).expect("a well-formed request"))
            .await
    }

    /// (status, ETag, body) of `method path` with `headers` and the JSON
    /// `body`, if any.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, Value) {
        self.call_with(method, path, body.as_ref(), headers)
            .await
            .parts()
    }

    /// (status, ETag, body) of `method path` with `If-Match: if_match`
    /// and the JSON `body`, if any.
    pub(crate) async fn call_if_match(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Option<String>, Value) {
        let headers: Vec<(&str, &str)> = if_match.map(|m| ("if-match", m)).into_iter().collect();
        self.call(method, path, body, &headers).await
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Option<String>, Value) {
        self.call(Method::GET, path, None, &[]).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: Value,
    ) -> (StatusCode, Option<String>, Value) {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    /// A POST of `body` that must answer `status`; its body.
    pub(crate) async fn made(&self, path: &str, body: Value, status: u16) -> Value {
        let (s, _, b) = self.post(path, body).await;
        assert_eq!(s, status, "POST {path}: {b}");
        b
    }
}

/// The `path` of each problem of a 4xx error body.
pub(crate) fn problems(body: &Value) -> Vec<String> {
    body["error"]["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {body}"))
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect()
}
