//! Change notifications for client SDKs, as OFREP's event-streams proposal
//! describes: the bulk response advertises an event stream
//! ([`event_streams`]); a client (an `EventSource`) connects to
//! `GET /ofrep/v1/events?environment=…&token=…`; the environment's
//! pointer object ([`crate::pointer`]) holds every connected stream and
//! writes a `refetchEvaluation` event ([`refetch_event`]) to each when a
//! newer snapshot is published; the client then re-fetches the bulk
//! evaluation with `?flagConfigEtag=<version>`, and an isolate still
//! serving an older version asks the pointer before answering
//! ([`wanted_version`]).
//!
//! An `EventSource` cannot send an `Authorization` header, so the URL
//! carries a token: a keyed hash of the environment under the worker's
//! `POINTER_SECRET` ([`token`]). It only lets its holder hear that the
//! environment changed; the flags still need the SDK key.

use bunting_core::keyhash::KeyHasher;
use serde_json::Value;

/// The event stream route.
pub const STREAM_PATH: &str = "/ofrep/v1/events";

/// Seconds of client inactivity (a hidden tab) after which the client
/// closes the stream (it reconnects and re-fetches when visible again).
pub const INACTIVITY_DELAY_SEC: u64 = 120;

/// How long an `EventSource` waits before reconnecting (ms), sent as the
/// stream's `retry:` field.
pub const RETRY_MS: u64 = 1000;

/// The stream token of `environment` under `secret`.
///
/// ```
/// use bunting_edge_worker::sse::{token, verify};
/// let t = token("s3cret", "acme/web/prod");
/// assert!(verify("s3cret", "acme/web/prod", &t));
/// assert!(!verify("s3cret", "acme/web/dev", &t));
/// assert!(!verify("other", "acme/web/prod", &t));
/// ```
pub fn token(secret: &str, environment: &str) -> String {
    KeyHasher::new(&format!("bunting-event-stream:{secret}")).hash(environment)
}

/// Whether `candidate` is the stream token of `environment` (constant-time
/// comparison).
pub fn verify(secret: &str, environment: &str, candidate: &str) -> bool {
    bunting_wire::same_secret(&token(secret, environment), candidate)
}

/// Percent-encodes a query parameter value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path and query of `environment`'s stream.
///
/// ```
/// use bunting_edge_worker::sse::stream_uri;
/// assert_eq!(stream_uri("acme/web/prod", "t0k"), "/ofrep/v1/events?environment=acme%2Fweb%2Fprod&token=t0k");
/// ```
pub fn stream_uri(environment: &str, token: &str) -> String {
    format!(
        "{STREAM_PATH}?environment={}&token={}",
        encode(environment),
        encode(token)
    )
}

/// The bulk response's `eventStreams`: one SSE stream, relative to the
/// client's OFREP base URL (OFREP's `endpoint.requestUri`).
pub fn event_streams(environment: &str, token: &str) -> Value {
    use crate::health::object;
    let endpoint = object(vec![(
        "requestUri",
        Value::from(stream_uri(environment, token)),
    )]);
    Value::Array(vec![object(vec![
        ("type", Value::from("sse")),
        ("endpoint", endpoint),
        ("inactivityDelaySec", Value::from(INACTIVITY_DELAY_SEC)),
    ])])
}

/// What a stream starts with: the reconnection delay and a comment (some
/// proxies hold a response until its first bytes).
pub fn prelude() -> String {
    format!("retry: {RETRY_MS}\n: bunting event stream\n\n")
}

/// The event telling clients that `version` of the environment's snapshot
/// is published: its `id` is the version (an `EventSource` sends it back
/// as `Last-Event-ID` when it reconnects), its `etag` the version the
/// client passes back as `flagConfigEtag`.
///
/// ```
/// use bunting_edge_worker::sse::refetch_event;
/// assert_eq!(refetch_event(7, 1_764_000_000),
///     "id: 7\nevent: message\ndata: {\"etag\":\"7\",\"lastModified\":1764000000,\"type\":\"refetchEvaluation\"}\n\n");
/// ```
pub fn refetch_event(version: u64, last_modified_secs: i64) -> String {
    let data = crate::health::object(vec![
        ("type", Value::from("refetchEvaluation")),
        ("etag", Value::from(version.to_string())),
        ("lastModified", Value::from(last_modified_secs)),
    ]);
    format!("id: {version}\nevent: message\ndata: {data}\n\n")
}

/// Whether a reconnecting client (its `Last-Event-ID`) missed `current`:
/// then it gets the event at once.
///
/// ```
/// use bunting_edge_worker::sse::missed;
/// assert!(missed(Some("3"), Some(4)));
/// assert!(!missed(Some("4"), Some(4)));
/// assert!(!missed(None, Some(4)), "a new client fetches anyway");
/// assert!(!missed(Some("x"), Some(4)));
/// ```
pub fn missed(last_event_id: Option<&str>, current: Option<u64>) -> bool {
    match (
        last_event_id.and_then(|v| v.trim().parse::<u64>().ok()),
        current,
    ) {
        (Some(seen), Some(cur)) => cur > seen,
        _ => false,
    }
}

/// The version a bulk request asks for with `flagConfigEtag` (sent by
/// clients re-fetching after an event), when it is newer than `served`:
/// the isolate then asks the pointer before answering.
///
/// ```
/// use bunting_edge_worker::sse::wanted_version;
/// assert_eq!(wanted_version(Some("9"), Some(8)), Some(9));
/// assert_eq!(wanted_version(Some("8"), Some(8)), None);
/// assert_eq!(wanted_version(Some("9"), None), Some(9));
/// assert_eq!(wanted_version(Some("\"9\""), Some(1)), Some(9));
/// assert_eq!(wanted_version(Some("nine"), Some(1)), None);
/// ```
pub fn wanted_version(flag_config_etag: Option<&str>, served: Option<u64>) -> Option<u64> {
    let wanted: u64 = flag_config_etag?.trim().trim_matches('"').parse().ok()?;
    served.is_none_or(|s| wanted > s).then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_stream_is_relative_and_authenticated() {
        let t = token("s", "acme/web/prod");
        assert_eq!(t.len(), 32);
        let streams = event_streams("acme/web/prod", &t);
        assert_eq!(streams[0]["type"], "sse");
        let uri = streams[0]["endpoint"]["requestUri"].as_str().unwrap();
        assert!(uri.starts_with("/ofrep/v1/events?environment=acme%2Fweb%2Fprod&token="));
        assert!(uri.ends_with(&t));
        assert_eq!(streams[0]["inactivityDelaySec"], 120);
    }

    #[test]
    fn events_are_well_formed_sse() {
        let e = refetch_event(12, 5);
        assert!(e.ends_with("\n\n"));
        let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["type"], "refetchEvaluation");
        assert_eq!(v["etag"], "12");
        assert!(prelude().starts_with("retry: 1000\n"));
        assert!(prelude().ends_with("\n\n"));
    }

    #[test]
    fn tokens_do_not_leak_the_secret() {
        let t = token("very-secret", "e");
        assert!(!t.contains("very-secret"));
        assert_ne!(t, token("very-secret", "f"));
        assert!(!verify("very-secret", "e", ""));
    }
}
