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
//!
//! Every body keeps to OFREP's OpenAPI schemas (`tests/edge/ofrep/schema.json`
//! renders their response rules; the edge tests validate each response
//! against it):
//!
//! - **Reasons** are OFREP's five ([`ofrep_reason`]): bunting's `DEFAULT`
//!   (no rule matched, a prerequisite failed, outside the layer range) is
//!   served as `TARGETING_MATCH`, the finer reason kept in
//!   `metadata.buntingReason`.
//! - **Error codes** are OFREP's ([`ofrep_error_code`]): the typed
//!   extension's `TYPE_MISMATCH` is served as `GENERAL`, the finer code kept in
//!   `metadata.buntingErrorCode`.
//! - **Numbers** of a number flag are served in one JSON form per flag
//!   ([`NumberForms`]): integers when every variant is written as an
//!   integer, else floats (`0` as `0.0`), so SDKs that type-check strictly
//!   (Python, Java) see one type whatever variant a user gets.

use crate::fragments::Fragments;

use bunting_core::{ErrorCode, Evaluation, FlagType, ParsedSnapshot, Reason};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Number, Value};
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

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
        m.insert("errorCode".into(), ofrep_error_code(self.code).0.into());
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
    // Taken, not removed: the document is dropped next, and
    // `BTreeMap::remove` would link the tree's rebalancing code.
    Ok(doc
        .get_mut("context")
        .map_or_else(|| Value::Object(Map::new()), Value::take))
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
    // By name, not with `FlagType`'s `Deserialize`: a typed read carries
    // serde's "invalid type: floating point …" error, and with it the float
    // formatter, into the bundle.
    match FlagType::ALL.into_iter().find(|t| t.as_str() == v) {
        Some(t) => Ok(Some(t)),
        None => Err(RequestError::new(
            ErrorCode::General,
            format!("unknown type {v:?}: use boolean, string, number or object"),
        )),
    }
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

/// The OFREP reason of a successful evaluation: OFREP's OpenAPI schema
/// allows `STATIC`, `TARGETING_MATCH`, `SPLIT`, `DISABLED` and `UNKNOWN`.
///
/// bunting's `DEFAULT` means the flag's targeting was evaluated against the
/// context and no rule served (the fallthrough's fixed variant, a failed
/// prerequisite, a user outside the flag's layer range): OpenFeature calls
/// the result of a dynamic evaluation `TARGETING_MATCH`. It must not be
/// `STATIC`, which promises a value independent of the context (providers
/// may cache it across contexts). The second value is the finer reason to
/// keep in metadata, when OFREP's word loses something.
///
/// ```
/// use bunting_core::Reason;
/// use bunting_edge_worker::ofrep::ofrep_reason;
/// assert_eq!(ofrep_reason(Reason::Default), ("TARGETING_MATCH", Some("DEFAULT")));
/// assert_eq!(ofrep_reason(Reason::Split), ("SPLIT", None));
/// ```
pub fn ofrep_reason(reason: Reason) -> (&'static str, Option<&'static str>) {
    match reason {
        Reason::Static => ("STATIC", None),
        Reason::TargetingMatch => ("TARGETING_MATCH", None),
        Reason::Split => ("SPLIT", None),
        Reason::Disabled => ("DISABLED", None),
        Reason::Default => ("TARGETING_MATCH", Some("DEFAULT")),
        // Errors are error objects, never a success with a reason.
        Reason::Error => ("UNKNOWN", Some("ERROR")),
    }
}

/// The OFREP error code of a failed evaluation: OFREP's evaluation failures
/// carry `PARSE_ERROR`, `TARGETING_KEY_MISSING`, `INVALID_CONTEXT` or
/// `GENERAL`, and a 404 carries `FLAG_NOT_FOUND`. `TYPE_MISMATCH` (only from
/// the `?type=` extension: OFREP itself has no requested type) becomes
/// `GENERAL`; the second value is the finer code to keep in metadata.
///
/// ```
/// use bunting_core::ErrorCode;
/// use bunting_edge_worker::ofrep::ofrep_error_code;
/// assert_eq!(ofrep_error_code(ErrorCode::TypeMismatch), ("GENERAL", Some("TYPE_MISMATCH")));
/// assert_eq!(ofrep_error_code(ErrorCode::ParseError), ("PARSE_ERROR", None));
/// ```
pub fn ofrep_error_code(code: ErrorCode) -> (&'static str, Option<&'static str>) {
    match code {
        ErrorCode::TypeMismatch => ("GENERAL", Some("TYPE_MISMATCH")),
        ErrorCode::FlagNotFound
        | ErrorCode::ParseError
        | ErrorCode::TargetingKeyMissing
        | ErrorCode::InvalidContext
        | ErrorCode::General => (code.as_str(), None),
    }
}

/// The JSON form of each number flag's values, decided once per snapshot.
///
/// JSON has one number type, but OpenFeature SDKs have an integer and a
/// float accessor, and some providers check the decoded type strictly:
/// Python's `isinstance(value, float)` rejects `25` and `isinstance(value,
/// int)` rejects `25.0`; Java's `Double.class.isInstance` rejects an
/// `Integer`. No single JSON text satisfies both, so a flag's author decides,
/// per flag, by how the variants are written: a number flag whose variants
/// are all written as integers is an integer flag and is served as integers;
/// one with any variant written as a float (`0.5`, `25.0`, `1e3`) is a float
/// flag and **every** value it serves is a float (`0` → `0.0`), so a float
/// accessor never fails on the one variant that happens to be whole.
/// Lenient SDKs (JavaScript, Go) accept both forms either way.
///
/// ```
/// use bunting_core::ParsedSnapshot;
/// use bunting_edge_worker::ofrep::NumberForms;
/// use serde_json::json;
/// let parsed = ParsedSnapshot::parse(r#"{"schemaVersion": 1, "environment": "t", "version": 1,
///   "generatedAt": "2026-11-25T00:00:00Z", "flags": [
///   {"key": "rate", "type": "number", "variants": {"none": 0, "some": 0.25}, "offVariant": "none",
///    "fallthrough": {"variant": "none"}},
///   {"key": "retries", "type": "number", "variants": {"few": 1, "many": 5}, "offVariant": "few",
///    "fallthrough": {"variant": "few"}}]}"#).unwrap();
/// let forms = NumberForms::of(&parsed);
/// assert_eq!(forms.present("rate", &json!(0)).to_string(), "0.0");
/// assert_eq!(forms.present("retries", &json!(5)).to_string(), "5");
/// ```
///
/// It also keeps the snapshot's pre-serialized item pieces
/// ([`Fragments`]), made as flags are served; equality compares the
/// float flags only.
#[derive(Debug, Default)]
pub struct NumberForms {
    /// The keys of the float flags, each with a 0: a set, in the exposure
    /// deduplicator's map type (`TimeMap`, as `/events`' ids)
    /// so that the worker carries one copy of hashbrown's code for all
    /// three, not a `HashSet<String>` of its own.
    float_flags: crate::dedup::TimeMap,
    fragments: Fragments,
}

impl PartialEq for NumberForms {
    fn eq(&self, other: &Self) -> bool {
        self.float_flags == other.float_flags
    }
}

impl NumberForms {
    /// The float flags of a parsed snapshot: number flags with a variant
    /// written as a float.
    pub fn of(parsed: &ParsedSnapshot<'_>) -> NumberForms {
        let float_flags = parsed
            .flags()
            .filter(|f| f.flag_type() == FlagType::Number)
            .filter(|f| f.variants().any(|(_, v)| v.is_f64()))
            .map(|f| (f.key().to_string(), 0))
            .collect();
        NumberForms {
            float_flags,
            fragments: Fragments::default(),
        }
    }

    /// [`NumberForms::of`] as it was computed from the owned model: the
    /// reference the tests compare it with.
    #[cfg(test)]
    pub(crate) fn from_model(snapshot: &bunting_core::Snapshot) -> NumberForms {
        let float_flags = snapshot
            .flags
            .iter()
            .filter(|f| f.flag_type == FlagType::Number)
            .filter(|f| f.variants.values().any(Value::is_f64))
            .map(|f| (f.key.clone(), 0))
            .collect();
        NumberForms {
            float_flags,
            fragments: Fragments::default(),
        }
    }

    /// Whether flag `key` is served as floats.
    pub fn is_float_flag(&self, key: &str) -> bool {
        self.float_flags.contains_key(key)
    }

    /// `value` as flag `key` serves it: whole numbers of a float flag as
    /// floats; everything else unchanged.
    pub fn present(&self, key: &str, value: &Value) -> Value {
        match value {
            Value::Number(n) if !n.is_f64() && self.is_float_flag(key) => n
                .as_f64()
                .and_then(Number::from_f64)
                .map_or_else(|| value.clone(), Value::Number),
            _ => value.clone(),
        }
    }
}

/// OFREP metadata of an evaluation, serialized straight from the borrowed
/// evaluation: the flag's metadata (tags joined with commas, since OFREP
/// metadata values are scalars), the matched rule, the failed prerequisite,
/// and bunting's reason where OFREP's is coarser. Keys are written in
/// sorted order, as a `serde_json::Map` writes them.
struct Metadata<'e, 'a>(&'e Evaluation<'a>);

impl Serialize for Metadata<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let meta = e.metadata.as_deref();
        let mut m = serializer.serialize_map(None)?;
        if let (_, Some(finer)) = ofrep_reason(e.reason) {
            m.serialize_entry("buntingReason", finer)?;
        }
        if let Some(d) = meta.and_then(|m| m.description.as_deref()) {
            m.serialize_entry("description", d)?;
        }
        if let Some(o) = meta.and_then(|m| m.owner.as_deref()) {
            m.serialize_entry("owner", o)?;
        }
        if let Some(p) = e.prerequisite_failed.as_deref() {
            m.serialize_entry("prerequisiteFailed", p)?;
        }
        if let Some(r) = e.rule_id.as_deref() {
            m.serialize_entry("ruleId", r)?;
        }
        if let Some(meta) = meta.filter(|m| !m.tags.is_empty()) {
            m.serialize_entry("tags", &Joined(&meta.tags))?;
        }
        m.end()
    }
}

/// Strings joined with commas, written without building the joined string.
struct Joined<'a>(&'a [String]);

impl Serialize for Joined<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// A served value as its flag serves it ([`NumberForms::present`]), by
/// reference: whole numbers of a float flag written as floats.
pub(crate) struct Presented<'e> {
    pub(crate) value: &'e Value,
    pub(crate) float: bool,
}

impl Serialize for Presented<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Number(n) if self.float && !n.is_f64() => match n.as_f64() {
                Some(f) if f.is_finite() => serializer.serialize_f64(f),
                _ => self.value.serialize(serializer),
            },
            v => v.serialize(serializer),
        }
    }
}

/// The metadata of an error item: the finer error code.
struct ErrorMetadata(&'static str);

impl Serialize for ErrorMetadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(1))?;
        m.serialize_entry("buntingErrorCode", self.0)?;
        m.end()
    }
}

/// The OFREP item for one evaluation, a success or an error object,
/// serialized straight from the borrowed evaluation (no intermediate
/// `serde_json::Value`, no cloned strings). Keys are written in sorted
/// order, byte for byte what serializing the same object as a
/// `serde_json::Value` gives.
///
/// ```
/// use bunting_core::Engine;
/// use bunting_edge_worker::ofrep::{item, NumberForms};
/// let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "t", "version": 1,
///   "generatedAt": "2026-11-25T00:00:00Z", "flags": [{"key": "b", "type": "boolean",
///   "variants": {"on": true}, "offVariant": "on", "fallthrough": {"variant": "on"}}]}"#).unwrap();
/// let e = engine.evaluate("b", &serde_json::json!({}), 0);
/// assert_eq!(serde_json::to_string(&item(&e, &NumberForms::default())).unwrap(),
///     r#"{"key":"b","metadata":{},"reason":"STATIC","value":true,"variant":"on"}"#);
/// ```
#[derive(Clone, Copy)]
pub struct Item<'e, 'a> {
    eval: &'e Evaluation<'a>,
    numbers: &'e NumberForms,
}

/// The OFREP item for one evaluation ([`Item`]).
pub fn item<'e, 'a>(eval: &'e Evaluation<'a>, numbers: &'e NumberForms) -> Item<'e, 'a> {
    Item { eval, numbers }
}

impl Serialize for Item<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.eval;
        let mut m = serializer.serialize_map(None)?;
        match e.error_code {
            Some(code) => {
                let (ofrep_code, finer) = ofrep_error_code(code);
                m.serialize_entry("errorCode", ofrep_code)?;
                m.serialize_entry(
                    "errorDetails",
                    e.error_message.as_deref().unwrap_or(code.as_str()),
                )?;
                m.serialize_entry("key", &*e.key)?;
                if let Some(finer) = finer {
                    m.serialize_entry("metadata", &ErrorMetadata(finer))?;
                }
            }
            None => {
                m.serialize_entry("key", &*e.key)?;
                m.serialize_entry("metadata", &Metadata(e))?;
                m.serialize_entry("reason", ofrep_reason(e.reason).0)?;
                let value = e.value.as_deref().unwrap_or(&Value::Null);
                let float = matches!(value, Value::Number(n) if !n.is_f64())
                    && self.numbers.is_float_flag(&e.key);
                m.serialize_entry("value", &Presented { value, float })?;
                // Always there on success; Python's provider reads it unguarded.
                if let Some(v) = e.variant.as_deref() {
                    m.serialize_entry("variant", v)?;
                }
            }
        }
        m.end()
    }
}

impl Item<'_, '_> {
    /// The item's JSON bytes: what serializing the [`Item`] gives, written
    /// with the snapshot's pre-serialized item pieces
    /// ([`crate::fragments`]), as a bulk body's items are.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(192);
        self.numbers
            .fragments
            .write_item(&mut out, self.eval, self.numbers);
        out
    }
}

/// Status and body of a single-flag evaluation.
pub fn single<'e, 'a>(e: &'e Evaluation<'a>, numbers: &'e NumberForms) -> (u16, Item<'e, 'a>) {
    let status = match e.error_code {
        None => 200,
        Some(ErrorCode::FlagNotFound) => 404,
        Some(_) => 400,
    };
    (status, item(e, numbers))
}

/// Body of a bulk evaluation, `{"eventStreams"?: ..., "flags": [...]}`,
/// serialized straight from the evaluations ([`Item`]).
#[derive(Clone, Copy)]
pub struct Bulk<'e, 'a> {
    evals: &'e [Evaluation<'a>],
    numbers: &'e NumberForms,
    event_streams: Option<&'e Value>,
}

/// Body of a bulk evaluation ([`Bulk`]); `event_streams` is the
/// `eventStreams` member, if the worker advertises change notifications.
pub fn bulk<'e, 'a>(
    evals: &'e [Evaluation<'a>],
    numbers: &'e NumberForms,
    event_streams: Option<&'e Value>,
) -> Bulk<'e, 'a> {
    Bulk {
        evals,
        numbers,
        event_streams,
    }
}

impl Bulk<'_, '_> {
    /// The body's JSON bytes: what serializing the [`Bulk`] gives, written
    /// with the snapshot's pre-serialized item pieces
    /// ([`crate::fragments`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        // About 170 bytes per item of the benchmark's flags: one allocation
        // for most bodies.
        let mut out = Vec::with_capacity(64 + self.evals.len() * 192);
        out.push(b'{');
        if let Some(streams) = self.event_streams {
            out.extend_from_slice(b"\"eventStreams\":");
            // Writing to a Vec cannot fail.
            serde_json::to_writer(&mut out, streams).expect("a JSON value serializes");
            out.push(b',');
        }
        out.extend_from_slice(b"\"flags\":[");
        for (i, e) in self.evals.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            self.numbers.fragments.write_item(&mut out, e, self.numbers);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// The body's JSON bytes through serde alone: the reference
    /// [`Bulk::to_bytes`] is tested against.
    #[cfg(test)]
    pub(crate) fn via_serde(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a bulk body serializes")
    }
}

/// The items of a bulk body.
struct Items<'e, 'a>(&'e [Evaluation<'a>], &'e NumberForms);

impl Serialize for Items<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|e| item(e, self.1)))
    }
}

impl Serialize for Bulk<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        if let Some(streams) = self.event_streams {
            m.serialize_entry("eventStreams", streams)?;
        }
        m.serialize_entry("flags", &Items(self.evals, self.numbers))?;
        m.end()
    }
}

/// A strong ETag for a response body: 128 bits of SipHash-1-3 over the
/// body, in hex. Not a cryptographic hash, which an ETag does not need
/// (it only has to change when the body does); about ten times cheaper than
/// SHA-256 in wasm without SIMD.
///
/// ```
/// use bunting_edge_worker::ofrep::etag;
/// assert_eq!(etag(b"{}"), etag(b"{}"));
/// assert_ne!(etag(b"{}"), etag(b"[]"));
/// assert_eq!(etag(b"{}").len(), 34);
/// ```
pub fn etag(body: &[u8]) -> String {
    let mut h = SipHasher13::new();
    h.write(body);
    format!("\"{:032x}\"", h.finish128().as_u128())
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
    use serde_json::json;

    /// The type names read are exactly `FlagType`'s serde names.
    #[test]
    fn expected_types_are_the_serde_names() {
        for name in [
            "boolean", "string", "number", "object", "Boolean", "bool", "", " number", "integer",
        ] {
            let serde = serde_json::from_value::<FlagType>(json!(name)).ok();
            match expected_type(Some(name)) {
                Ok(t) => assert_eq!(t, serde, "{name}"),
                Err(e) => {
                    assert_eq!(serde, None, "{name}");
                    assert_eq!(e.code, ErrorCode::General);
                    assert!(e.details.contains("use boolean, string, number or object"));
                }
            }
        }
    }

    /// `single` with its body as a `Value`.
    fn single(e: &Evaluation<'_>, numbers: &NumberForms) -> (u16, Value) {
        let (status, body) = super::single(e, numbers);
        (status, serde_json::to_value(body).unwrap())
    }

    /// `bulk` without event streams, as a `Value`.
    fn bulk(evals: &[Evaluation<'_>], numbers: &NumberForms) -> Value {
        serde_json::from_slice(&super::bulk(evals, numbers, None).to_bytes()).unwrap()
    }

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
        let (status, body) = single(&ev, &NumberForms::default());
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
        let none = NumberForms::default();
        let (status, body) = single(&e.evaluate("nope", &json!({}), 0), &none);
        assert_eq!(status, 404);
        assert_eq!(body["errorCode"], "FLAG_NOT_FOUND");
        assert_eq!(body["key"], "nope");
        let (status, body) = single(&e.evaluate("r", &json!({}), 0), &none);
        assert_eq!(status, 400);
        assert_eq!(body["errorCode"], "TARGETING_KEY_MISSING");
        assert!(body.get("value").is_none());
    }

    #[test]
    fn bulk_mixes_successes_and_errors() {
        let e = engine();
        let body = bulk(&e.evaluate_all(&json!({}), 0), &NumberForms::default());
        let flags = body["flags"].as_array().unwrap();
        assert_eq!(flags.len(), 2);
        assert_eq!(flags[0]["value"], false);
        assert_eq!(flags[1]["errorCode"], "TARGETING_KEY_MISSING");
    }

    #[test]
    fn default_is_served_as_targeting_match_with_the_finer_reason() {
        let e = engine();
        let (status, body) = single(
            &e.evaluate("b", &json!({"country": "FR"}), 0),
            &NumberForms::default(),
        );
        assert_eq!(status, 200);
        assert_eq!(body["reason"], "TARGETING_MATCH");
        assert_eq!(body["metadata"]["buntingReason"], "DEFAULT");
        assert!(body["metadata"].get("ruleId").is_none());
    }

    #[test]
    fn every_reason_and_code_is_an_ofrep_one() {
        let reasons = ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"];
        for r in Reason::ALL {
            assert!(reasons.contains(&ofrep_reason(r).0), "{r:?}");
        }
        let codes = [
            "FLAG_NOT_FOUND",
            "PARSE_ERROR",
            "TARGETING_KEY_MISSING",
            "INVALID_CONTEXT",
            "GENERAL",
        ];
        for c in ErrorCode::ALL {
            assert!(codes.contains(&ofrep_error_code(c).0), "{c:?}");
        }
    }

    #[test]
    fn type_mismatch_is_general_with_the_finer_code() {
        let e = engine();
        let ev = e.evaluate_typed("b", Some(FlagType::Number), &json!({}), 0);
        let (status, body) = single(&ev, &NumberForms::default());
        assert_eq!(status, 400);
        assert_eq!(body["errorCode"], "GENERAL");
        assert_eq!(
            body["metadata"],
            json!({"buntingErrorCode": "TYPE_MISMATCH"})
        );
    }

    #[test]
    fn number_flags_are_served_in_one_form() {
        let e = Engine::from_json(NUMBERS).unwrap();
        let forms = NumberForms::of(&ParsedSnapshot::parse(NUMBERS).unwrap());
        let served = |key: &str, variant: &str| {
            let ctx = json!({"targetingKey": "u", "v": variant});
            let body = serde_json::to_string(&single(&e.evaluate(key, &ctx, 0), &forms).1).unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["variant"], variant, "{body}");
            body
        };
        // A float flag: every value a float, the whole ones included.
        assert!(served("rate", "zero").contains(r#""value":0.0"#));
        assert!(served("rate", "whole").contains(r#""value":25.0"#));
        assert!(served("rate", "half").contains(r#""value":0.5"#));
        // Written 1.0: a float flag even though every value is whole.
        assert!(served("ratio", "one").contains(r#""value":1.0"#));
        // Every variant an integer: integers.
        assert!(served("retries", "few").contains(r#""value":1,"#));
        assert!(served("retries", "many").contains(r#""value":25,"#));
        assert!(!forms.is_float_flag("retries"));
        // Other types are untouched.
        assert_eq!(forms.present("rate", &json!("x")), json!("x"));
    }

    const NUMBERS: &str = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
        "generatedAt": "2026-11-25T00:00:00Z",
        "flags": [
          {"key": "rate", "type": "number", "variants": {"zero": 0, "whole": 25, "half": 0.5}, "offVariant": "zero",
           "rules": [{"id": "w", "condition": "v == \"whole\"", "serve": {"variant": "whole"}},
                     {"id": "h", "condition": "v == \"half\"", "serve": {"variant": "half"}}],
           "fallthrough": {"variant": "zero"}},
          {"key": "ratio", "type": "number", "variants": {"one": 1.0, "two": 2.0}, "offVariant": "one",
           "fallthrough": {"variant": "one"}},
          {"key": "retries", "type": "number", "variants": {"few": 1, "many": 25}, "offVariant": "few",
           "rules": [{"id": "m", "condition": "v == \"many\"", "serve": {"variant": "many"}}],
           "fallthrough": {"variant": "few"}}
        ]}"#;

    /// The item as the worker built it before it serialized straight to
    /// bytes: a `serde_json::Value` tree with cloned strings. The direct
    /// serialization must give the same bytes.
    fn reference_item(e: &Evaluation<'_>, numbers: &NumberForms) -> Value {
        match e.error_code {
            Some(code) => {
                let (ofrep_code, finer) = ofrep_error_code(code);
                let mut m = Map::new();
                m.insert("key".into(), Value::String(e.key.to_string()));
                m.insert("errorCode".into(), ofrep_code.into());
                m.insert(
                    "errorDetails".into(),
                    e.error_message.as_deref().unwrap_or(code.as_str()).into(),
                );
                if let Some(finer) = finer {
                    m.insert("metadata".into(), json!({ "buntingErrorCode": finer }));
                }
                Value::Object(m)
            }
            None => {
                let mut m = Map::new();
                m.insert("key".into(), Value::String(e.key.to_string()));
                let value = e.value.as_deref().unwrap_or(&Value::Null);
                m.insert("value".into(), numbers.present(&e.key, value));
                m.insert("reason".into(), ofrep_reason(e.reason).0.into());
                if let Some(v) = e.variant.as_deref() {
                    m.insert("variant".into(), v.into());
                }
                let mut meta = Map::new();
                if let Some(fm) = &e.metadata {
                    if let Some(d) = &fm.description {
                        meta.insert("description".into(), d.clone().into());
                    }
                    if let Some(o) = &fm.owner {
                        meta.insert("owner".into(), o.clone().into());
                    }
                    if !fm.tags.is_empty() {
                        meta.insert("tags".into(), fm.tags.join(",").into());
                    }
                }
                if let Some(r) = &e.rule_id {
                    meta.insert("ruleId".into(), Value::String(r.to_string()));
                }
                if let Some(p) = &e.prerequisite_failed {
                    meta.insert("prerequisiteFailed".into(), Value::String(p.to_string()));
                }
                if let (_, Some(finer)) = ofrep_reason(e.reason) {
                    meta.insert("buntingReason".into(), finer.into());
                }
                m.insert("metadata".into(), Value::Object(meta));
                Value::Object(m)
            }
        }
    }

    /// Flags with every kind of answer: metadata with escaping, rules,
    /// prerequisites, errors, float and integer numbers, objects.
    const MIXED: &str = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
        "generatedAt": "2026-11-25T00:00:00Z",
        "flags": [
          {"key": "b", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
           "rules": [{"id": "us", "condition": "country == \"US\"", "serve": {"variant": "on"}}],
           "fallthrough": {"variant": "off"},
           "metadata": {"description": "quote \" and \u00e9 and \n", "owner": "web", "tags": ["a", "b,c", "\u2603"]}},
          {"key": "pre", "type": "string", "variants": {"x": "x", "y": "y"}, "offVariant": "x",
           "prerequisites": [{"flag": "b", "variant": "on"}],
           "fallthrough": {"variant": "y"}, "metadata": {"tags": ["t"]}},
          {"key": "r", "type": "string", "variants": {"x": "x", "y": "y"}, "offVariant": "x",
           "fallthrough": {"rollout": [{"variant": "x", "weight": 50}, {"variant": "y", "weight": 50}]}},
          {"key": "off", "type": "object", "enabled": false, "variants": {"o": {"a": [1, 2.5, null], "b": "s"}},
           "offVariant": "o", "fallthrough": {"variant": "o"}},
          {"key": "rate", "type": "number", "variants": {"zero": 0, "half": 0.5}, "offVariant": "zero",
           "fallthrough": {"variant": "zero"}},
          {"key": "n", "type": "number", "variants": {"big": 12345678901234}, "offVariant": "big",
           "fallthrough": {"variant": "big"}}
        ]}"#;

    #[test]
    fn direct_serialization_matches_the_value_tree_byte_for_byte() {
        let e = Engine::from_json(MIXED).unwrap();
        let forms = NumberForms::of(&ParsedSnapshot::parse(MIXED).unwrap());
        let contexts = [
            json!({}),
            json!({"targetingKey": "u1", "country": "US"}),
            json!({"targetingKey": "u2", "country": "FR"}),
            json!([1]),
        ];
        for ctx in &contexts {
            let evals = e.evaluate_all(ctx, 0);
            let mut ty = Some(FlagType::Number);
            for ev in evals.iter().cloned().chain([
                e.evaluate("nope", ctx, 0),
                e.evaluate_typed("b", ty.take(), ctx, 0),
            ]) {
                let direct = serde_json::to_vec(&item(&ev, &forms)).unwrap();
                let reference = serde_json::to_vec(&reference_item(&ev, &forms)).unwrap();
                assert_eq!(
                    String::from_utf8(direct).unwrap(),
                    String::from_utf8(reference).unwrap()
                );
            }
            let streams = json!({"url": "https://e/x", "z": [1]});
            for s in [None, Some(&streams)] {
                let mut reference = json!({
                    "flags": evals.iter().map(|ev| reference_item(ev, &forms)).collect::<Vec<_>>()
                });
                if let Some(s) = s {
                    reference["eventStreams"] = s.clone();
                }
                assert_eq!(
                    String::from_utf8(super::bulk(&evals, &forms, s).to_bytes()).unwrap(),
                    serde_json::to_string(&reference).unwrap()
                );
            }
        }
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
