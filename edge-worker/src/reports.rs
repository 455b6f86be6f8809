//! `POST /exposures`: clients report the flags their application *used*.
//!
//! A bulk evaluation (`POST /ofrep/v1/evaluate/flags`) records no exposure:
//! fetching every flag says nothing about which variant a user saw. A client
//! reports use instead, batched:
//!
//! ```json
//! {"context": {"targetingKey": "user-1"}, "flags": ["checkout", "new-nav"]}
//! ```
//!
//! The edge never trusts a variant a client claims: it evaluates each flag
//! again for the context (with the same edge attributes as an evaluation)
//! and records a `SPLIT` exposure exactly as the single-flag endpoint does,
//! deduplicated per user, flag and variant ([`crate::dedup`]). Every flag
//! gets an [`Outcome`]; an unknown flag is an outcome, not an error. Only a
//! malformed request is refused ([`ReportError`], with OFREP's error codes
//! and every invalid item listed).
//!
//! ```
//! use bunting_core::Engine;
//! use bunting_edge_worker::audience::Audience;
//! use bunting_edge_worker::dedup::ExposureDedup;
//! use bunting_edge_worker::exposure::{ExposureMeta, KeyHasher};
//! use bunting_edge_worker::reports::{parse_report, record_reports, Outcome};
//! let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "prod", "version": 7, "generatedAt": "2026-11-25T00:00:00Z",
//!   "flags": [{"key": "checkout", "type": "string", "variants": {"a": "old", "b": "new"}, "offVariant": "a",
//!     "fallthrough": {"rollout": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}}]}"#).unwrap();
//! let report = parse_report(br#"{"context": {"targetingKey": "u1"}, "flags": ["checkout", "nope", "checkout"]}"#).unwrap();
//! let hasher = KeyHasher::new("s");
//! let meta = ExposureMeta { hasher: &hasher, environment: "prod", snapshot_version: 7, time_ms: 0 };
//! let mut dedup = ExposureDedup::new(60_000, 100);
//! let (results, exposures) = record_reports(&engine, Audience::Server, &report.context, &report.flags, &meta, &mut dedup, 0);
//! assert_eq!(exposures.len(), 1);
//! let outcomes: Vec<_> = results.iter().map(|r| r.outcome).collect();
//! assert_eq!(outcomes, [Outcome::Recorded, Outcome::FlagNotFound, Outcome::Duplicate]);
//! ```

use bunting_core::{Engine, ErrorCode, Evaluation, Reason};
use bunting_wire::ExposureRecord;
use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::audience::Audience;
use crate::dedup::ExposureDedup;
use crate::exposure::{ExposureMeta, exposure_for};

/// The route.
pub const PATH: &str = "/exposures";
/// Most flags in one report.
pub const MAX_FLAGS: usize = 100;
/// Longest flag key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = crate::ofrep::MAX_BODY_BYTES;

/// A parsed report: the client's context and the flags it used.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The evaluation context, as in an OFREP request (`{}` when absent).
    pub context: Value,
    /// Flag keys, in the client's order (repeats allowed).
    pub flags: Vec<String>,
}

/// Why a report was refused (HTTP 400, or 413 for [`ReportError::TooLarge`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportError {
    /// The body exceeds [`MAX_BODY_BYTES`].
    #[error("request body exceeds {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    /// The body is not an object, or `context` is not an object.
    #[error("{0}")]
    Context(&'static str),
    /// `flags` is missing, not an array, empty or too long.
    #[error("{0}")]
    Flags(String),
    /// Some `flags` items are not valid keys: every one, in order.
    #[error("{} invalid flag key(s); first: flags[{}]: {}", .0.len(), .0[0].index, .0[0].reason)]
    Items(Vec<InvalidItem>),
}

/// One invalid item of `flags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidItem {
    /// Its index in `flags`.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl ReportError {
    /// The HTTP status: 413 for a body too large, else 400.
    pub fn status(&self) -> u16 {
        match self {
            ReportError::TooLarge => 413,
            _ => 400,
        }
    }

    /// OFREP's error code: `PARSE_ERROR`, `INVALID_CONTEXT` or `GENERAL`.
    pub fn code(&self) -> &'static str {
        match self {
            ReportError::Json(_) => "PARSE_ERROR",
            ReportError::Context(_) => "INVALID_CONTEXT",
            _ => "GENERAL",
        }
    }

    /// The response body: `{"errorCode", "errorDetails"}`, plus `invalid`
    /// (`[{"index", "reason"}]`) for invalid items.
    ///
    /// ```
    /// use bunting_edge_worker::reports::parse_report;
    /// let e = parse_report(br#"{"flags": ["ok", 3, ""]}"#).unwrap_err();
    /// let body = e.body();
    /// assert_eq!(body["errorCode"], "GENERAL");
    /// assert_eq!(body["invalid"][0]["index"], 1);
    /// assert_eq!(body["invalid"][1]["index"], 2);
    /// ```
    pub fn body(&self) -> Value {
        // What `json!` and `to_value(list)` gave, from ready-made
        // `Value`s (see `health::object`).
        let mut fields = vec![
            ("errorCode", Value::from(self.code())),
            ("errorDetails", Value::from(self.to_string())),
        ];
        if let ReportError::Items(list) = self {
            let items = list.iter().map(|item| {
                crate::health::object(vec![
                    ("index", Value::from(item.index)),
                    ("reason", Value::from(item.reason.as_str())),
                ])
            });
            fields.push(("invalid", Value::Array(items.collect())));
        }
        crate::health::object(fields)
    }
}

/// Parses and checks a `POST /exposures` body.
pub fn parse_report(body: &[u8]) -> Result<Report, ReportError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ReportError::TooLarge);
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| ReportError::Json(e.to_string()))?;
    let Value::Object(mut doc) = doc else {
        return Err(ReportError::Context(
            r#"the body must be a JSON object like {"context": {...}, "flags": ["key"]}"#,
        ));
    };
    // Taken, not removed (`BTreeMap::remove` links the tree's
    // rebalancing code): the document is dropped after.
    let context = match doc.get_mut("context").map(Value::take) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(c @ Value::Object(_)) => c,
        Some(_) => return Err(ReportError::Context("`context` must be a JSON object")),
    };
    let list = match doc.get_mut("flags").map(Value::take) {
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ReportError::Flags(
                "`flags` must be an array of flag keys".into(),
            ));
        }
        None => return Err(ReportError::Flags("`flags` is required".into())),
    };
    if list.is_empty() {
        return Err(ReportError::Flags(
            "`flags` must list at least one flag key".into(),
        ));
    }
    if list.len() > MAX_FLAGS {
        return Err(ReportError::Flags(format!(
            "too many flags: {}, at most {MAX_FLAGS} per report",
            list.len()
        )));
    }
    if let Some(unknown) = doc
        .keys()
        .find(|k| !matches!(k.as_str(), "context" | "flags"))
    {
        return Err(ReportError::Flags(format!(
            "unknown field {unknown:?}: a report has `context` and `flags`"
        )));
    }
    let mut flags = Vec::with_capacity(list.len());
    let mut invalid = Vec::new();
    for (index, item) in list.into_iter().enumerate() {
        let reason = match item {
            Value::String(s) if s.is_empty() => "a flag key must not be empty".to_string(),
            Value::String(s) if s.len() > MAX_KEY_LEN => {
                format!("a flag key has at most {MAX_KEY_LEN} bytes")
            }
            Value::String(s) => {
                flags.push(s);
                continue;
            }
            _ => "a flag key must be a string".to_string(),
        };
        invalid.push(InvalidItem { index, reason });
    }
    if !invalid.is_empty() {
        return Err(ReportError::Items(invalid));
    }
    Ok(Report { context, flags })
}

/// What became of one reported flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// A `SPLIT` exposure was recorded.
    Recorded,
    /// The same user saw the same variant less than the window ago: counted
    /// once already.
    Duplicate,
    /// The flag serves this context by another reason than `SPLIT` (static,
    /// targeting, disabled…): nothing to analyse.
    NotSplit,
    /// A split, but the context has no `targetingKey` to join with events.
    NoTargetingKey,
    /// No such flag.
    FlagNotFound,
    /// The evaluation failed (its `errorCode` is in the result).
    Error,
}

impl Outcome {
    /// Its name in a response, as its derived `Serialize` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Recorded => "recorded",
            Outcome::Duplicate => "duplicate",
            Outcome::NotSplit => "notSplit",
            Outcome::NoTargetingKey => "noTargetingKey",
            Outcome::FlagNotFound => "flagNotFound",
            Outcome::Error => "error",
        }
    }
}

/// The result of one reported flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemResult {
    /// The flag key, as reported.
    pub key: String,
    /// What happened.
    pub outcome: Outcome,
    /// OFREP's error code, for [`Outcome::Error`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
}

/// The exposure `eval` gives, if any, after deduplication (`clock_ms` is the
/// isolate's clock): the single-flag endpoint's and the reports' one path.
pub fn deduplicated_exposure(
    eval: &Evaluation<'_>,
    context: &Value,
    meta: &ExposureMeta<'_>,
    dedup: &mut ExposureDedup,
    clock_ms: i64,
) -> Result<ExposureRecord, Outcome> {
    if let Some(code) = eval.error_code {
        return Err(match code {
            ErrorCode::FlagNotFound => Outcome::FlagNotFound,
            _ => Outcome::Error,
        });
    }
    if eval.reason != Reason::Split {
        return Err(Outcome::NotSplit);
    }
    let e = exposure_for(eval, context, meta).ok_or(Outcome::NoTargetingKey)?;
    if dedup.admit(
        &e.environment,
        &e.flag,
        &e.variant,
        &e.bucketing_key_hash,
        clock_ms,
    ) {
        Ok(e)
    } else {
        Err(Outcome::Duplicate)
    }
}

/// Evaluates every reported flag for `context` at `meta.time_ms` as
/// `audience` may see it and returns each one's result and the exposures to
/// record. A flag hidden from a client key is `flagNotFound`, as everywhere
/// at the edge ([`Audience`]).
pub fn record_reports(
    engine: &Engine,
    audience: Audience,
    context: &Value,
    flags: &[String],
    meta: &ExposureMeta<'_>,
    dedup: &mut ExposureDedup,
    clock_ms: i64,
) -> (Vec<ItemResult>, Vec<ExposureRecord>) {
    let mut results = Vec::with_capacity(flags.len());
    let mut exposures = Vec::new();
    for key in flags {
        let eval = audience.evaluate(engine, key, None, context, meta.time_ms);
        let outcome = match deduplicated_exposure(&eval, context, meta, dedup, clock_ms) {
            Ok(e) => {
                exposures.push(e);
                Outcome::Recorded
            }
            Err(o) => o,
        };
        let error_code = (outcome == Outcome::Error)
            .then(|| eval.error_code.map(|c| crate::ofrep::ofrep_error_code(c).0))
            .flatten();
        results.push(ItemResult {
            key: key.clone(),
            outcome,
            error_code,
        });
    }
    (results, exposures)
}

/// The `202` body: `{"recorded": n, "forwarded": bool, "results": [...]}`.
pub fn response_body(results: &[ItemResult], forwarded: bool) -> Value {
    let recorded = results
        .iter()
        .filter(|r| r.outcome == Outcome::Recorded)
        .count();
    // What `json!` gave with the derived `Serialize` of the results, from
    // ready-made `Value`s (see `health::object`).
    let results = results.iter().map(|r| {
        let mut fields = vec![
            ("key", Value::from(r.key.as_str())),
            ("outcome", Value::from(r.outcome.as_str())),
        ];
        if let Some(code) = r.error_code {
            fields.push(("errorCode", Value::from(code)));
        }
        crate::health::object(fields)
    });
    crate::health::object(vec![
        ("recorded", Value::from(recorded)),
        ("forwarded", Value::from(forwarded)),
        ("results", Value::Array(results.collect())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bodies built from `Value`s are the bytes `json!` and the
    /// derived `Serialize` gave.
    #[test]
    fn bodies_as_json_and_the_derives_wrote_them() {
        let outcomes = [
            Outcome::Recorded,
            Outcome::Duplicate,
            Outcome::NotSplit,
            Outcome::NoTargetingKey,
            Outcome::FlagNotFound,
            Outcome::Error,
        ];
        let results: Vec<ItemResult> = outcomes
            .iter()
            .enumerate()
            .map(|(i, &outcome)| ItemResult {
                key: format!("f\"{i}"),
                outcome,
                error_code: (outcome == Outcome::Error).then_some("GENERAL"),
            })
            .collect();
        for forwarded in [false, true] {
            for n in [0, 1, results.len()] {
                let recorded = results[..n]
                    .iter()
                    .filter(|r| r.outcome == Outcome::Recorded)
                    .count();
                let old =
                    json!({"recorded": recorded, "forwarded": forwarded, "results": &results[..n]});
                let new = response_body(&results[..n], forwarded);
                assert_eq!(new.to_string(), old.to_string());
            }
        }
        for body in [
            &br#"{"flags": ["ok", 3, ""]}"#[..],
            br#"{"flags": []}"#,
            br#"[1]"#,
            br#"{"#,
        ] {
            let e = parse_report(body).unwrap_err();
            let mut old = json!({"errorCode": e.code(), "errorDetails": e.to_string()});
            if let ReportError::Items(list) = &e {
                old["invalid"] = serde_json::to_value(list).unwrap();
            }
            assert_eq!(e.body().to_string(), old.to_string());
        }
    }
    use crate::exposure::KeyHasher;

    fn engine() -> Engine {
        Engine::from_json(
            r#"{"schemaVersion": 1, "environment": "prod", "version": 3,
                "generatedAt": "2026-11-25T00:00:00Z", "flags": [
                {"key": "exp", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                 "fallthrough": {"rollout": [{"variant": "on", "weight": 50},
                                             {"variant": "off", "weight": 50}]}},
                {"key": "plain", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                 "fallthrough": {"variant": "on"}}]}"#,
        )
        .unwrap()
    }

    fn run(
        engine: &Engine,
        body: &str,
        dedup: &mut ExposureDedup,
        clock: i64,
    ) -> (Vec<ItemResult>, Vec<ExposureRecord>) {
        let r = parse_report(body.as_bytes()).unwrap();
        let hasher = KeyHasher::new("s");
        let meta = ExposureMeta {
            hasher: &hasher,
            environment: engine.environment(),
            snapshot_version: engine.version(),
            time_ms: clock,
        };
        record_reports(
            engine,
            Audience::Server,
            &r.context,
            &r.flags,
            &meta,
            dedup,
            clock,
        )
    }

    #[test]
    fn a_client_key_reports_only_client_side_flags() {
        let e = Engine::from_json(
            r#"{"schemaVersion": 1, "environment": "prod", "version": 3,
                "generatedAt": "2026-11-25T00:00:00Z", "flags": [
                {"key": "open", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                 "fallthrough": {"rollout": [{"variant": "on", "weight": 50},
                                             {"variant": "off", "weight": 50}]}, "clientSide": true},
                {"key": "hidden", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                 "fallthrough": {"rollout": [{"variant": "on", "weight": 50},
                                             {"variant": "off", "weight": 50}]}}]}"#,
        )
        .unwrap();
        let hasher = KeyHasher::new("s");
        let meta = ExposureMeta {
            hasher: &hasher,
            environment: "prod",
            snapshot_version: 3,
            time_ms: 0,
        };
        let ctx = json!({"targetingKey": "u1"});
        let flags = ["open".to_string(), "hidden".to_string()];
        let outcomes = |audience| {
            let mut d = ExposureDedup::new(1000, 100);
            let (r, x) = record_reports(&e, audience, &ctx, &flags, &meta, &mut d, 0);
            (r.iter().map(|r| r.outcome).collect::<Vec<_>>(), x.len())
        };
        assert_eq!(
            outcomes(Audience::Client),
            (vec![Outcome::Recorded, Outcome::FlagNotFound], 1)
        );
        assert_eq!(
            outcomes(Audience::Server),
            (vec![Outcome::Recorded, Outcome::Recorded], 2)
        );
    }

    #[test]
    fn the_served_variant_is_recomputed_never_claimed() {
        let e = engine();
        let mut d = ExposureDedup::new(1000, 100);
        for i in 0..20 {
            let ctx = json!({"targetingKey": format!("u{i}")});
            let served = e.evaluate("exp", &ctx, 0).variant.unwrap().to_string();
            let body = json!({"context": ctx, "flags": ["exp"], }).to_string();
            let (_, x) = run(&e, &body, &mut d, 0);
            assert_eq!(x[0].variant, served);
        }
    }

    #[test]
    fn every_flag_gets_an_outcome() {
        let e = engine();
        let mut d = ExposureDedup::new(1000, 100);
        let (r, x) = run(
            &e,
            r#"{"context": {"targetingKey": "u"}, "flags": ["exp", "plain", "missing", "exp"]}"#,
            &mut d,
            0,
        );
        let outcomes: Vec<_> = r.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Recorded,
                Outcome::NotSplit,
                Outcome::FlagNotFound,
                Outcome::Duplicate
            ]
        );
        assert_eq!(x.len(), 1);
        assert_eq!(
            response_body(&r, true),
            json!({"recorded": 1, "forwarded": true, "results": [
                {"key": "exp", "outcome": "recorded"}, {"key": "plain", "outcome": "notSplit"},
                {"key": "missing", "outcome": "flagNotFound"}, {"key": "exp", "outcome": "duplicate"}]})
        );
        // The next report within the window: a duplicate; after it: recorded.
        let body = r#"{"context": {"targetingKey": "u"}, "flags": ["exp"]}"#;
        assert_eq!(run(&e, body, &mut d, 999).0[0].outcome, Outcome::Duplicate);
        assert_eq!(run(&e, body, &mut d, 1000).0[0].outcome, Outcome::Recorded);
    }

    #[test]
    fn a_split_without_a_key_is_reported_as_such() {
        let e = engine();
        let mut d = ExposureDedup::new(1000, 100);
        let (r, x) = run(&e, r#"{"flags": ["exp"]}"#, &mut d, 0);
        assert!(x.is_empty());
        assert_eq!(r[0].outcome, Outcome::Error);
        assert_eq!(r[0].error_code, Some("TARGETING_KEY_MISSING"));
    }

    #[test]
    fn bad_requests_are_typed() {
        let cases: [(&str, &str, u16); 9] = [
            ("{", "PARSE_ERROR", 400),
            ("[]", "INVALID_CONTEXT", 400),
            (r#"{"context": 1, "flags": ["a"]}"#, "INVALID_CONTEXT", 400),
            (r#"{"context": {}}"#, "GENERAL", 400),
            (r#"{"flags": "a"}"#, "GENERAL", 400),
            (r#"{"flags": []}"#, "GENERAL", 400),
            (r#"{"flags": ["a"], "variant": "b"}"#, "GENERAL", 400),
            (r#"{"flags": [null]}"#, "GENERAL", 400),
            (r#"{"flags": ["a", {"key": "b"}]}"#, "GENERAL", 400),
        ];
        for (body, code, status) in cases {
            let e = parse_report(body.as_bytes()).unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{body}");
            assert!(e.body()["errorDetails"].is_string());
        }
        let many = json!({"flags": (0..=MAX_FLAGS).map(|i| i.to_string()).collect::<Vec<_>>()});
        let e = parse_report(many.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("too many"), "{e}");
        let long = json!({"flags": ["x".repeat(MAX_KEY_LEN + 1), "ok", ""]});
        let e = parse_report(long.to_string().as_bytes()).unwrap_err();
        let body = e.body();
        assert_eq!(body["invalid"].as_array().unwrap().len(), 2);
        assert_eq!(body["invalid"][1]["index"], 2);
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse_report(&big).unwrap_err().status(), 413);
        // Exactly the limits are fine.
        let ok =
            json!({"flags": (0..MAX_FLAGS).map(|_| "x".repeat(MAX_KEY_LEN)).collect::<Vec<_>>()});
        assert_eq!(
            parse_report(ok.to_string().as_bytes()).unwrap().flags.len(),
            MAX_FLAGS
        );
    }
}
