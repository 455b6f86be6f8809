//! `X-Request-Id`: the client's, when it is a sane id, or a new one.
//!
//! Every request gets an id that the response echoes, the request log line
//! carries and the audit log stores with each change. A client may send its
//! own (to correlate its logs with ours) when it is 1–128 characters of
//! `A-Z a-z 0-9 - _ . : / + =` (UUIDs, hex, base64, ULIDs and W3C
//! `traceparent` values fit). Any other value — too long, empty, spaces,
//! quotes, control or non-ASCII characters — is **replaced** by a generated
//! id (24 hex digits): the response's `X-Request-Id` is then not the one
//! sent, and the origin logs the replacement (with the length of what was
//! sent, not its content).
//!
//! ```
//! use bunting_origin::api::request_id::valid;
//! assert!(valid("4bf92f3577b34da6a3ce929d0e0e4736"));
//! assert!(valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
//! assert!(!valid(""));
//! assert!(!valid(&"a".repeat(129)));
//! assert!(!valid("a b"));
//! assert!(!valid("<script>"));
//! ```

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::REQUEST_ID;

/// The longest client request id kept, in bytes.
pub const MAX_LEN: usize = 128;

/// Whether `id` is kept as the request id: 1–[`MAX_LEN`] characters of
/// `A-Z a-z 0-9 - _ . : / + =`.
pub fn valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b))
}

/// A new random request id: 24 hex digits.
pub fn generate() -> HeaderValue {
    let mut b = [0u8; 12];
    // Without the OS's random source, fall back on the clock: the id only
    // correlates log lines.
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        b.copy_from_slice(&nanos.to_le_bytes()[..12]);
    }
    HeaderValue::from_str(&hex::encode(b)).expect("hex is a valid header value")
}

/// Middleware: keeps a valid client `X-Request-Id`, replaces an invalid
/// one (or several) and sets a missing one, before anything reads it.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let sent = req.headers().get_all(&REQUEST_ID).iter().count();
    let keep = sent == 1
        && req
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .is_some_and(valid);
    if !keep {
        let id = generate();
        if sent > 0 {
            let len = req
                .headers()
                .get_all(&REQUEST_ID)
                .iter()
                .map(|v| v.len())
                .sum::<usize>();
            tracing::warn!(
                request_id = id.to_str().unwrap_or_default(),
                sent_values = sent,
                sent_bytes = len,
                "client X-Request-Id is not 1-128 characters of A-Z a-z 0-9 - _ . : / + =; replaced"
            );
        }
        req.headers_mut().insert(&REQUEST_ID, id);
    }
    next.run(req).await
}
