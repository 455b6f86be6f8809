//! The OpenFeature Remote Evaluation Protocol (OFREP) over bunting's engine:
//! request bodies in, status codes and JSON bodies out. Pure: the Workers
//! glue (`worker_main.rs`) only moves bytes.
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}` with `{"context": {...}}`:
//!   200 `{"key","value","reason","variant","metadata"}`; 404
//!   `{"key","errorCode":"FLAG_NOT_FOUND","errorDetails"}`; 400
//!   `{"key","errorCode","errorDetails"}` for every other error code.
//! - `POST /ofrep/v1/evaluate/flags`: 200 `{"flags": [...]}`, each item a
//!   success or an error object as above; the response carries an `ETag`.

use bunting_core::{ErrorCode, Evaluation, FlagType};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Path prefix of single-flag evaluations.
pub const SINGLE_PREFIX: &str = "/ofrep/v1/evaluate/flags/";
/// Path of bulk evaluations.
pub const BULK_PATH: &str = "/ofrep/v1/evaluate/flags";

/// A request the worker answers with an OFREP error before evaluating.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// OpenFeature error code.
    pub code: ErrorCode,
    /// Human explanation.
    pub details: String,
}

impl RequestError {
    fn new(code: ErrorCode, details: impl Into<String>) -> Self {
        RequestError {
            code,
            details: details.into(),
        }
    }

    /// The OFREP error body; `key` is set for single-flag requests.
    pub fn body(&self, key: Option<&str>) -> Value {
        let mut m = Map::new();
        if let Some(k) = key {
            m.insert("key".into(), Value::String(k.into()));
        }
        m.insert("errorCode".into(), self.code.as_str().into());
        m.insert("errorDetails".into(), self.details.clone().into());
        Value::Object(m)
    }
}

/// The evaluation context of an OFREP request body (`{"context": {...}}`).
/// An empty body, or one without `context`, is an empty context.
///
/// ```
/// use bunting_edge_worker::ofrep::parse_context;
/// assert_eq!(parse_context(br#"{"context": {"targetingKey": "u1"}}"#).unwrap()["targetingKey"], "u1");
/// assert_eq!(parse_context(b"").unwrap(), serde_json::json!({}));
/// assert_eq!(parse_context(b"{").unwrap_err().code.as_str(), "PARSE_ERROR");
/// assert_eq!(parse_context(br#"{"context": 3}"#).unwrap(), serde_json::json!(3));
/// assert_eq!(parse_context(b"[]").unwrap_err().code.as_str(), "INVALID_CONTEXT");
/// ```
pub fn parse_context(body: &[u8]) -> Result<Value, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::new(
            ErrorCode::InvalidContext,
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| {
        RequestError::new(
            ErrorCode::ParseError,
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(mut doc) = doc else {
        return Err(RequestError::new(
            ErrorCode::InvalidContext,
            "request body must be a JSON object like {\"context\": {...}}",
        ));
    };
    // Any JSON value is passed on: the engine answers `INVALID_CONTEXT` for a
    // context that is not an object or has a non-string `targetingKey`, per
    // flag and after `FLAG_NOT_FOUND`, exactly as every other host does.
    Ok(doc
        .remove("context")
        .unwrap_or_else(|| Value::Object(Map::new())))
}

/// The optional `type` query parameter of a single-flag request (a bunting
/// extension to OFREP): `boolean`, `string`, `number` or `object`. With it
/// the engine reports `TYPE_MISMATCH` itself, with the same precedence as
/// every other host (OFREP clients otherwise check the type client-side,
/// after the evaluation).
///
/// ```
/// use bunting_edge_worker::ofrep::expected_type;
/// assert_eq!(expected_type(None).unwrap(), None);
/// assert!(expected_type(Some("boolean")).unwrap().is_some());
/// assert_eq!(expected_type(Some("bool")).unwrap_err().code.as_str(), "GENERAL");
/// ```
pub fn expected_type(value: Option<&str>) -> Result<Option<FlagType>, RequestError> {
    let Some(v) = value else {
        return Ok(None);
    };
    serde_json::from_value(Value::String(v.to_string()))
        .map(Some)
        .map_err(|_| {
            RequestError::new(
                ErrorCode::General,
                format!("unknown type {v:?}: use boolean, string, number or object"),
            )
        })
}

/// The flag key of a single-flag path, percent-decoded; `None` for other paths.
///
/// ```
/// use bunting_edge_worker::ofrep::flag_key_from_path;
/// assert_eq!(flag_key_from_path("/ofrep/v1/evaluate/flags/new-checkout").as_deref(), Some("new-checkout"));
/// assert_eq!(flag_key_from_path("/ofrep/v1/evaluate/flags/a%20b").as_deref(), Some("a b"));
/// assert_eq!(flag_key_from_path("/ofrep/v1/evaluate/flags/"), None);
/// ```
pub fn flag_key_from_path(path: &str) -> Option<String> {
    let raw = path.strip_prefix(SINGLE_PREFIX)?;
    if raw.is_empty() || raw.contains('/') {
        return None;
    }
    percent_decode(raw)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// OFREP metadata of an evaluation: the flag's metadata (tags joined with
/// commas, since OFREP metadata values are scalars), the matched rule and the
/// failed prerequisite.
pub fn metadata(e: &Evaluation<'_>) -> Value {
    let mut m = Map::new();
    if let Some(meta) = &e.metadata {
        if let Some(d) = &meta.description {
            m.insert("description".into(), d.clone().into());
        }
        if let Some(o) = &meta.owner {
            m.insert("owner".into(), o.clone().into());
        }
        if !meta.tags.is_empty() {
            m.insert("tags".into(), meta.tags.join(",").into());
        }
    }
    if let Some(r) = &e.rule_id {
        m.insert("ruleId".into(), Value::String(r.to_string()));
    }
    if let Some(p) = &e.prerequisite_failed {
        m.insert("prerequisiteFailed".into(), Value::String(p.to_string()));
    }
    Value::Object(m)
}

/// The OFREP item for one evaluation: a success or an error object.
pub fn item(e: &Evaluation<'_>) -> Value {
    match e.error_code {
        Some(code) => json!({
            "key": e.key,
            "errorCode": code.as_str(),
            "errorDetails": e.error_message.as_deref().unwrap_or(code.as_str()),
        }),
        None => json!({
            "key": e.key,
            "value": e.value.as_deref().cloned().unwrap_or(Value::Null),
            "reason": e.reason.as_str(),
            "variant": e.variant.as_deref(),
            "metadata": metadata(e),
        }),
    }
}

/// Status and body of a single-flag evaluation.
pub fn single(e: &Evaluation<'_>) -> (u16, Value) {
    let status = match e.error_code {
        None => 200,
        Some(ErrorCode::FlagNotFound) => 404,
        Some(_) => 400,
    };
    (status, item(e))
}

/// Body of a bulk evaluation.
pub fn bulk(evals: &[Evaluation<'_>]) -> Value {
    json!({ "flags": evals.iter().map(item).collect::<Vec<_>>() })
}

/// A strong ETag for a response body.
pub fn etag(body: &[u8]) -> String {
    let d = Sha256::digest(body);
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in &d[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison,
/// lists and `*` allowed).
///
/// ```
/// use bunting_edge_worker::ofrep::if_none_match;
/// assert!(if_none_match("\"a\", W/\"b\"", "\"b\""));
/// assert!(if_none_match("*", "\"b\""));
/// assert!(!if_none_match("\"a\"", "\"b\""));
/// ```
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == bare)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bunting_core::Engine;

    fn engine() -> Engine {
        Engine::from_json(
            r#"{"schemaVersion": 1, "environment": "t", "version": 1,
              "generatedAt": "2026-11-25T00:00:00Z",
              "flags": [
                {"key": "b", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                 "rules": [{"id": "us", "condition": "country == \"US\"", "serve": {"variant": "on"}}],
                 "fallthrough": {"variant": "off"}, "metadata": {"owner": "web", "tags": ["a", "b"]}},
                {"key": "r", "type": "string", "variants": {"x": "x", "y": "y"}, "offVariant": "x",
                 "fallthrough": {"rollout": [{"variant": "x", "weight": 50}, {"variant": "y", "weight": 50}]}}
              ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn success_item() {
        let e = engine();
        let ev = e.evaluate("b", &json!({"country": "US"}), 0);
        let (status, body) = single(&ev);
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"key": "b", "value": true, "reason": "TARGETING_MATCH", "variant": "on",
                   "metadata": {"owner": "web", "tags": "a,b", "ruleId": "us"}})
        );
    }

    #[test]
    fn error_items() {
        let e = engine();
        let (status, body) = single(&e.evaluate("nope", &json!({}), 0));
        assert_eq!(status, 404);
        assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
        assert_eq!(body["key"], "nope");
        let (status, body) = single(&e.evaluate("r", &json!({}), 0));
        assert_eq!(status, 400);
        assert_eq!(body["errorCode"], "TARGETING_KEY_MISSING");
        assert!(body.get("value").is_none());
    }

    #[test]
    fn bulk_mixes_successes_and_errors() {
        let e = engine();
        let body = bulk(&e.evaluate_all(&json!({}), 0));
        let flags = body["flags"].as_array().unwrap();
        assert_eq!(flags.len(), 2);
        assert_eq!(flags[0]["value"], false);
        assert_eq!(flags[1]["errorCode"], "TARGETING_KEY_MISSING");
    }

    #[test]
    fn etag_is_stable_and_quoted() {
        assert_eq!(etag(b"x"), etag(b"x"));
        assert_ne!(etag(b"x"), etag(b"y"));
        assert!(etag(b"x").starts_with('"') && etag(b"x").ends_with('"'));
    }

    #[test]
    fn bad_bodies() {
        assert_eq!(
            parse_context(b"[1]").unwrap_err().code,
            ErrorCode::InvalidContext
        );
        assert_eq!(parse_context(br#"{"context": null}"#).unwrap(), Value::Null);
        assert_eq!(parse_context(br#"{"other": 1}"#).unwrap(), json!({}));
        assert!(parse_context(&vec![b' '; MAX_BODY_BYTES + 1]).is_err());
    }
}
