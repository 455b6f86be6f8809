//! The web console, served by `bunting serve` at `/`.
//!
//! The console is a single-page application built by vite into
//! `console/dist/` (`cargo xtask console`): `index.html` plus hashed
//! `assets/*.js|css|wasm`. The binary embeds that folder at compile time
//! (`Embedded`); `bunting serve --console-dir DIR` serves a directory on
//! disk instead ([`ConsoleSource::Dir`]), so a console change needs no Rust
//! rebuild.
//!
//! Routes, outside `/api/v1` and the OpenAPI document:
//!
//! - `GET /`: `index.html`, `Cache-Control: no-cache`;
//! - `GET /assets/{path}`: the hashed files, cached for a year
//!   (`immutable`), with their media type (`application/wasm` for `.wasm`);
//! - any other `GET`/`HEAD` whose path is not the API's, the sign-in's or an
//!   operational endpoint's ([`RESERVED`]): a file at the top of the build
//!   (`/favicon.svg`) if there is one, else `index.html` when the client
//!   accepts `text/html` (client-side routing: a deep link loads the app),
//!   else the JSON 404 of the API.
//!
//! Every response carries a Content-Security-Policy that allows only the
//! origin itself ([`CSP`]), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: same-origin`. A precompressed `FILE.gz` beside a file
//! is sent to clients that accept gzip. Without a built console, the pages
//! answer 503 with a short HTML page that says how to build it.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::api::AppState;

/// The console's build, embedded at compile time (empty when
/// `console/dist` was not built; see `build.rs`).
#[derive(RustEmbed)]
#[folder = "../console/dist"]
#[allow_missing = true]
struct Embedded;

/// Where the console's files come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConsoleSource {
    /// The copy embedded in the binary.
    #[default]
    Embedded,
    /// A build on disk (`bunting serve --console-dir DIR`), read at each
    /// request.
    Dir(PathBuf),
}

/// The Content-Security-Policy of the console: only the origin itself;
/// WebAssembly may compile (the engine), styles may be inline (components'
/// `style` attributes), images may be data or blob URLs (charts).
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; \
     form-action 'self'";

/// Path prefixes that are never the console's: the API, the sign-in and the
/// operational endpoints (`api::ops`). An unknown path under them is the
/// API's JSON 404, whatever the client accepts.
pub const RESERVED: [&str; 5] = ["/api", "/auth", "/healthz", "/readyz", "/metrics"];

/// `Cache-Control` of the hashed assets.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The routes of the console (the rest is [`fallback`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

/// The console's answer to a request no route took: a top-level file of
/// the build or, for a `GET`/`HEAD` that accepts HTML, the application
/// (`index.html`); `None` when it is not the console's (the API answers
/// its 404).
pub async fn fallback(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    if is_reserved(path) {
        return None;
    }
    let source = &state.config.console;
    let name = path.trim_start_matches('/');
    if safe_path(name)
        && !name.starts_with("assets/")
        && let Some(file) = load(source, name, accepts_gzip(headers)).await
    {
        return Some(file.response(name, "no-cache"));
    }
    accepts_html(headers).then_some(())?;
    Some(index_page(source, headers).await)
}

/// Whether `path` belongs to the API, the sign-in or an operational
/// endpoint.
///
/// ```
/// use bunting_origin::console::is_reserved;
/// assert!(is_reserved("/api/v1/nope"));
/// assert!(is_reserved("/auth/login"));
/// assert!(is_reserved("/metrics"));
/// assert!(!is_reserved("/orgs/demo/projects/demo/flags"));
/// assert!(!is_reserved("/apiary"));
/// ```
pub fn is_reserved(path: &str) -> bool {
    RESERVED.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Whether `path` (relative, `/`-separated, already percent-decoded) names
/// a file inside the build: segments of letters, digits, `-`, `_` and `.`,
/// none empty and none starting with `.` (so no `..`, no hidden files, no
/// backslash, no absolute path).
///
/// ```
/// use bunting_origin::console::safe_path;
/// assert!(safe_path("assets/app-abc123.js"));
/// assert!(!safe_path("assets/../../etc/passwd"));
/// assert!(!safe_path("/etc/passwd"));
/// assert!(!safe_path("assets\\..\\x"));
/// assert!(!safe_path("assets/.env"));
/// assert!(!safe_path(""));
/// ```
pub fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// The media type of a file, by its extension.
///
/// ```
/// use bunting_origin::console::content_type;
/// assert_eq!(content_type("assets/engine-1a2b.wasm"), "application/wasm");
/// assert_eq!(content_type("assets/app.js"), "text/javascript; charset=utf-8");
/// assert_eq!(content_type("blob"), "application/octet-stream");
/// ```
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /`.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    index_page(&state.config.console, &headers).await
}

/// `GET /assets/{path}`: a hashed file, or the API's 404.
async fn asset(
    State(state): State<AppState>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let name = format!("assets/{path}");
    if !safe_path(&name) {
        return crate::api::ApiError::bad_request(format!(
            "{:?} is not a file of the console",
            format!("/{name}")
        ))
        .into_response();
    }
    match load(&state.config.console, &name, accepts_gzip(&headers)).await {
        Some(file) => file.response(&name, IMMUTABLE),
        None => crate::api::ApiError::not_found("console file").into_response(),
    }
}

/// `index.html`, or the 503 page when there is none.
async fn index_page(source: &ConsoleSource, headers: &HeaderMap) -> Response {
    match load(source, "index.html", accepts_gzip(headers)).await {
        Some(file) => file.response("index.html", "no-cache"),
        None => not_built(source),
    }
}

/// The page of a console that was not built: 503, HTML.
fn not_built(source: &ConsoleSource) -> Response {
    let why = match source {
        ConsoleSource::Embedded => {
            "This <code>bunting</code> binary was built without the web console.".to_string()
        }
        ConsoleSource::Dir(dir) => format!(
            "There is no <code>index.html</code> in <code>{}</code> (<code>--console-dir</code>).",
            html_escape(&dir.display().to_string())
        ),
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>bunting: the console is not built</title></head>\n<body>\
         <h1>The console is not built</h1>\n<p>{why}</p>\n\
         <p>The console is not built: run <code>cargo xtask console</code> (it builds \
         <code>console/dist</code>), then rebuild <code>bunting</code> or start it with \
         <code>--console-dir console/dist</code>.</p>\n\
         <p>The API is available at <a href=\"/api/v1/openapi.json\">/api/v1</a>.</p>\n\
         </body></html>\n"
    );
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response();
    secure(response.headers_mut());
    response
}

/// A file of the build, read whole.
struct File {
    bytes: Cow<'static, [u8]>,
    /// Whether `bytes` is the gzip of the file (its `.gz` sibling).
    gzip: bool,
}

impl File {
    /// The file as a 200 response, with its media type, `cache` as its
    /// `Cache-Control` and the security headers.
    fn response(self, name: &str, cache: &'static str) -> Response {
        let body = match self.bytes {
            Cow::Borrowed(b) => Body::from(b),
            Cow::Owned(b) => Body::from(b),
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(name)),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if self.gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        secure(headers);
        response
    }
}

/// The security headers of every console response.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// The file `name` (a [`safe_path`]) of the build, or its `.gz` sibling
/// when `gzip` is accepted and there is one.
async fn load(source: &ConsoleSource, name: &str, gzip: bool) -> Option<File> {
    if gzip && let Some(bytes) = read(source, &format!("{name}.gz")).await {
        return Some(File { bytes, gzip: true });
    }
    let bytes = read(source, name).await?;
    Some(File { bytes, gzip: false })
}

/// The bytes of the file `name` of the build, if it is one.
async fn read(source: &ConsoleSource, name: &str) -> Option<Cow<'static, [u8]>> {
    debug_assert!(safe_path(name));
    match source {
        ConsoleSource::Embedded => Embedded::get(name).map(|file| file.data),
        ConsoleSource::Dir(dir) => read_file(&dir.join(name)).await.map(Cow::Owned),
    }
}

/// A regular file's bytes (not a directory's), if readable.
async fn read_file(path: &Path) -> Option<Vec<u8>> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    if !metadata.is_file() {
        return None;
    }
    tokio::fs::read(path).await.ok()
}

/// Whether the client accepts HTML (a browser navigating).
fn accepts_html(headers: &HeaderMap) -> bool {
    header_lists(headers, header::ACCEPT).any(|t| t.eq_ignore_ascii_case("text/html"))
}

/// Whether the client accepts gzip.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    header_lists(headers, header::ACCEPT_ENCODING).any(|t| t.eq_ignore_ascii_case("gzip"))
}

/// The items of comma-separated header `name`, without their parameters
/// (`;q=0.9`), which are ignored.
fn header_lists(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| item.split(';').next().unwrap_or("").trim())
}

/// `s` safe inside HTML text.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
