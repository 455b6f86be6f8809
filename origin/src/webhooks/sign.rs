//! Standard Webhooks signatures: `webhook-signature: v1,<base64 of
//! HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")>`, where
//! the secret is the bytes of the base64 after `whsec_`. During a secret
//! rotation's grace period the header carries both signatures, separated
//! by a space; a receiver accepts the message when any `v1` signature
//! matches one of the secrets it knows.
//!
//! ```
//! use bunting_origin::webhooks::sign::{sign, verify, Verdict};
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"type":"flag.create"}"#;
//! let header = sign(&[secret], "msg_1", 1_700_000_000, body).unwrap();
//! assert!(header.starts_with("v1,"));
//! assert_eq!(verify(secret, "msg_1", "1700000000", &header, body, 1_700_000_010), Verdict::Valid);
//! assert_eq!(verify(secret, "msg_1", "1700000000", &header, b"{}", 1_700_000_010), Verdict::BadSignature);
//! assert_eq!(verify(secret, "msg_1", "1700000000", &header, body, 1_700_000_400), Verdict::StaleTimestamp);
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a message's timestamp may be from the receiver's clock, in
/// seconds (the specification's suggestion: 5 minutes).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// The key bytes of secret `whsec_<base64>`, if it is one.
fn key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(b64).ok()
}

/// The base64 HMAC-SHA256 of `{msg_id}.{timestamp}.{body}` under `key`.
fn mac(key: &[u8], msg_id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    STANDARD.encode(m.finalize().into_bytes())
}

/// The `webhook-signature` header of message `msg_id` sent at `timestamp`
/// (Unix seconds) with `body`: one `v1,<signature>` per secret, separated
/// by spaces. `None` if a secret is not `whsec_<base64>`.
pub fn sign(secrets: &[&str], msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let ts = timestamp.to_string();
    let mut parts = Vec::with_capacity(secrets.len());
    for s in secrets {
        parts.push(format!("v1,{}", mac(&key(s)?, msg_id, &ts, body)));
    }
    Some(parts.join(" "))
}

/// What a receiver concludes of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A signature matches and the timestamp is fresh.
    Valid,
    /// The timestamp is not a number, or more than [`TOLERANCE_SECONDS`]
    /// away from the receiver's clock (a replay of an old message).
    StaleTimestamp,
    /// No `v1` signature matches (forged, altered or unsigned).
    BadSignature,
}

/// A receiver's check of a message (headers `webhook-id`,
/// `webhook-timestamp`, `webhook-signature` and the raw body) against
/// `secret` at time `now` (Unix seconds). A receiver must also remember
/// the `webhook-id`s it accepted within the tolerance window and refuse a
/// second one: the signature proves who sent a message, not that it is new.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Verdict {
    match timestamp.parse::<i64>() {
        Ok(t) if (now - t).abs() <= TOLERANCE_SECONDS => {}
        _ => return Verdict::StaleTimestamp,
    }
    let Some(key) = key(secret) else {
        return Verdict::BadSignature;
    };
    let expected = mac(&key, msg_id, timestamp, body);
    let matched = signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| bunting_wire::same_secret(s, &expected));
    if matched {
        Verdict::Valid
    } else {
        Verdict::BadSignature
    }
}
