//! CORS: `ALLOWED_ORIGINS` is `*` or a comma-separated list of origins.

/// Methods a browser may use.
pub const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Request headers a browser may send.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-None-Match, X-API-Key";
/// Response headers a browser may read: the bulk answer's `ETag`, and
/// `Retry-After` of a 429 (rate limited) or 503 (no snapshot yet).
pub const EXPOSE_HEADERS: &str = "ETag, Retry-After";
/// How long a preflight answer may be cached, in seconds.
pub const MAX_AGE: &str = "86400";

/// The CORS headers for a request from `origin` (absent for same-origin and
/// non-browser requests, and for origins not allowed).
///
/// ```
/// use bunting_edge_worker::cors::headers;
/// assert!(headers("*", Some("https://a.example"), false).iter().any(|(k, v)| *k == "Access-Control-Allow-Origin" && v == "*"));
/// assert!(headers("https://a.example, https://b.example", Some("https://b.example"), false)
///     .iter().any(|(k, v)| *k == "Access-Control-Allow-Origin" && v == "https://b.example"));
/// assert!(headers("https://a.example", Some("https://evil.example"), true).is_empty());
/// assert!(headers("", Some("https://a.example"), true).is_empty());
/// ```
pub fn headers(
    allowed: &str,
    origin: Option<&str>,
    preflight: bool,
) -> Vec<(&'static str, String)> {
    let Some(origin) = origin else {
        return Vec::new();
    };
    let any = allowed.trim() == "*";
    let listed = allowed
        .split(',')
        .map(str::trim)
        .any(|a| !a.is_empty() && a.eq_ignore_ascii_case(origin));
    if !any && !listed {
        return Vec::new();
    }
    let mut h = Vec::new();
    if any {
        h.push(("Access-Control-Allow-Origin", "*".to_string()));
    } else {
        h.push(("Access-Control-Allow-Origin", origin.to_string()));
        // Explicitly listed origins may send the anonymous-id cookie.
        h.push(("Access-Control-Allow-Credentials", "true".to_string()));
        h.push(("Vary", "Origin".to_string()));
    }
    h.push(("Access-Control-Expose-Headers", EXPOSE_HEADERS.to_string()));
    if preflight {
        h.push(("Access-Control-Allow-Methods", ALLOW_METHODS.to_string()));
        h.push(("Access-Control-Allow-Headers", ALLOW_HEADERS.to_string()));
        h.push(("Access-Control-Max-Age", MAX_AGE.to_string()));
    }
    h
}
