//! Which methods each route answers, for `405 Method Not Allowed` and its
//! `Allow` header (RFC 9110 §15.5.6: a 405 must list the methods the target
//! resource supports). `OPTIONS` (CORS preflight) is answered everywhere.

use crate::{ofrep, pointer, reports, snapshot, sse};

/// The `Allow` header value of `path`, `None` for paths that are no route
/// (those answer 404).
///
/// ```
/// use bunting_edge_worker::routes::allowed_methods;
/// assert_eq!(allowed_methods("/ofrep/v1/evaluate/flags"), Some("POST, OPTIONS"));
/// assert_eq!(allowed_methods("/ofrep/v1/evaluate/flags/new-checkout"), Some("POST, OPTIONS"));
/// assert_eq!(allowed_methods("/healthz"), Some("GET, OPTIONS"));
/// assert_eq!(allowed_methods("/sdk/v1/snapshot"), Some("GET, OPTIONS"));
/// assert_eq!(allowed_methods("/nope"), None);
/// ```
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/healthz" | snapshot::PATH | sse::STREAM_PATH => Some("GET, OPTIONS"),
        ofrep::BULK_PATH | "/events" | reports::PATH | pointer::PUBLISH_PATH => {
            Some("POST, OPTIONS")
        }
        p if p.starts_with(ofrep::SINGLE_PREFIX) => Some("POST, OPTIONS"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_lists_its_methods() {
        for (path, allow) in [
            ("/healthz", Some("GET, OPTIONS")),
            ("/sdk/v1/snapshot", Some("GET, OPTIONS")),
            ("/sdk/v1/snapshot/", None),
            ("/events", Some("POST, OPTIONS")),
            ("/exposures", Some("POST, OPTIONS")),
            ("/edge/v1/snapshot", Some("POST, OPTIONS")),
            ("/ofrep/v1/evaluate/flags", Some("POST, OPTIONS")),
            ("/ofrep/v1/evaluate/flags/a%20b", Some("POST, OPTIONS")),
            ("/ofrep/v1/evaluate", None),
            ("/", None),
        ] {
            assert_eq!(allowed_methods(path), allow, "{path}");
        }
    }
}
