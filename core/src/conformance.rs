//! The conformance fixture format, shared by every host's test suite.
//!
//! A fixture file (`tests/conformance/*.json`) holds one snapshot and the
//! cases to run against it:
//!
//! ```json
//! {
//!   "description": "string operators",
//!   "lenient": false,
//!   "snapshot": { "schemaVersion": 1, "...": "..." },
//!   "cases": [
//!     { "name": "starts_with matches", "flag": "f", "context": {"targetingKey": "u1"},
//!       "now": "2026-12-01T00:00:00Z", "expectedType": "boolean",
//!       "expect": {"value": true, "variant": "on", "reason": "TARGETING_MATCH", "errorCode": null} }
//!   ]
//! }
//! ```
//!
//! `expect` always states `value`, `variant`, `reason` and `errorCode` (null
//! when absent); `ruleId` and `prerequisiteFailed` are checked when given.
//! A case without `flag` evaluates all flags and checks `expectAll`, a map
//! from flag key to expectation. A host runs a case however it evaluates
//! (natively, through wasmtime, through wasm-bindgen) and hands the result,
//! as JSON, to [`Case::check`]; [`run`] does that for every file. Numbers
//! compare by value (`1` equals `1.0`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::FlagType;
use crate::protocol::EvalRequest;
use crate::time::parse_rfc3339_ms;

/// One fixture file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fixture {
    /// What the file covers.
    pub description: String,
    /// Load the snapshot leniently (broken flags evaluate to errors).
    #[serde(default)]
    pub lenient: bool,
    /// The snapshot document.
    pub snapshot: Value,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One evaluation and what it must produce.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// Unique name within the file.
    pub name: String,
    /// Flag to evaluate; absent means evaluate all.
    #[serde(default)]
    pub flag: Option<String>,
    /// Evaluation context.
    pub context: Value,
    /// Evaluation time (RFC 3339).
    pub now: String,
    /// Type the caller expects.
    #[serde(default)]
    pub expected_type: Option<FlagType>,
    /// Expectation for a single-flag case.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Expectations for an evaluate-all case, by flag key.
    #[serde(default)]
    pub expect_all: Option<BTreeMap<String, Expect>>,
}

/// Expected fields of an evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expect {
    /// Served value (null on error).
    pub value: Value,
    /// Served variant (null on error).
    pub variant: Option<String>,
    /// Reason, e.g. `SPLIT`.
    pub reason: String,
    /// Error code or null.
    pub error_code: Option<String>,
    /// Matched rule id, checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// Failed prerequisite, checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prerequisite_failed: Option<String>,
}

impl Expect {
    fn check(&self, got: &Value) -> Result<(), String> {
        let field = |k: &str| got.get(k).cloned().unwrap_or(Value::Null);
        let mut diffs = Vec::new();
        let mut cmp = |name: &str, want: Value| {
            let have = field(name);
            if !same_json(&have, &want) {
                diffs.push(format!("{name}: expected {want}, got {have}"));
            }
        };
        cmp("value", self.value.clone());
        cmp(
            "variant",
            self.variant.clone().map_or(Value::Null, Value::String),
        );
        cmp("reason", Value::String(self.reason.clone()));
        cmp(
            "errorCode",
            self.error_code.clone().map_or(Value::Null, Value::String),
        );
        if let Some(r) = &self.rule_id {
            cmp("ruleId", Value::String(r.clone()));
        }
        if let Some(p) = &self.prerequisite_failed {
            cmp("prerequisiteFailed", Value::String(p.clone()));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("; "))
        }
    }
}

impl Case {
    /// The evaluation request this case makes.
    pub fn request(&self) -> Result<EvalRequest, String> {
        let now_ms = parse_rfc3339_ms(&self.now)
            .ok_or_else(|| format!("case {:?}: bad `now` {:?}", self.name, self.now))?;
        Ok(EvalRequest {
            flag: self.flag.clone(),
            context: self.context.clone(),
            now_ms,
            expected_type: self.expected_type,
        })
    }

    /// Checks a host's result: one evaluation object for a single-flag case,
    /// an array of evaluations for an evaluate-all case.
    pub fn check(&self, got: &Value) -> Result<(), String> {
        let fail = |why: String| Err(format!("case {:?}: {why}", self.name));
        match (&self.flag, &self.expect, &self.expect_all) {
            (Some(_), Some(expect), None) => expect.check(got).or_else(fail),
            (None, None, Some(all)) => {
                let Some(items) = got.as_array() else {
                    return fail(format!("expected an array of evaluations, got {got}"));
                };
                let by_key: BTreeMap<&str, &Value> = items
                    .iter()
                    .filter_map(|e| Some((e.get("key")?.as_str()?, e)))
                    .collect();
                if by_key.len() != all.len() {
                    return fail(format!(
                        "expected {} flags, got {}",
                        all.len(),
                        by_key.len()
                    ));
                }
                for (key, expect) in all {
                    let Some(e) = by_key.get(key.as_str()) else {
                        return fail(format!("flag {key:?} missing from evaluate-all"));
                    };
                    expect
                        .check(e)
                        .or_else(|w| fail(format!("flag {key:?}: {w}")))?;
                }
                Ok(())
            }
            _ => fail("a case has either `flag` and `expect`, or `expectAll` and no flag".into()),
        }
    }
}

/// What running the fixtures through one host found.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases run.
    pub cases: usize,
    /// One line per failure, prefixed with the fixture file name.
    pub failures: Vec<String>,
}

impl Report {
    /// Panics with every failure, naming `host`, unless all cases passed.
    pub fn assert_clean(&self, host: &str) {
        assert!(
            self.failures.is_empty(),
            "{} of {} conformance case(s) failed {host}:\n{}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n")
        );
    }
}

/// Runs every case of every fixture file through one host.
///
/// `load` builds the host's engine from a snapshot document (JSON text) and
/// the fixture's `lenient` flag; `answer` evaluates a request on it, returning
/// the result as JSON. Both report failures as strings.
///
/// ```
/// use bunting_core::conformance::run;
/// let files = [("f.json", r#"{"description": "d", "snapshot": {"schemaVersion": 1,
///   "environment": "e", "version": 1, "generatedAt": "2026-01-01T00:00:00Z",
///   "flags": [{"key": "x", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
///              "fallthrough": {"variant": "on"}}]},
///   "cases": [{"name": "c", "flag": "x", "context": {}, "now": "2026-01-01T00:00:00Z",
///              "expect": {"value": true, "variant": "on", "reason": "STATIC", "errorCode": null}}]}"#)];
/// let report = run(&files, |json, _| bunting_core::Engine::from_json(json).map_err(|e| e.to_string()),
///     |engine, req| Ok(serde_json::to_value(engine.answer(req)).unwrap()["one"].clone()));
/// report.assert_clean("in this example");
/// assert_eq!(report.cases, 1);
/// ```
pub fn run<E>(
    files: &[(&str, &str)],
    mut load: impl FnMut(&str, bool) -> Result<E, String>,
    mut answer: impl FnMut(&mut E, &EvalRequest) -> Result<Value, String>,
) -> Report {
    let mut report = Report::default();
    for (name, text) in files {
        let fixture: Fixture = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                report.failures.push(format!("{name}: not a fixture: {e}"));
                continue;
            }
        };
        report.cases += fixture.cases.len();
        let mut engine = match load(&fixture.snapshot.to_string(), fixture.lenient) {
            Ok(e) => e,
            Err(e) => {
                report
                    .failures
                    .push(format!("{name}: snapshot does not load: {e}"));
                continue;
            }
        };
        for case in &fixture.cases {
            let outcome = case
                .request()
                .and_then(|req| {
                    answer(&mut engine, &req).map_err(|e| format!("case {:?}: {e}", case.name))
                })
                .and_then(|got| case.check(&got));
            if let Err(e) = outcome {
                report.failures.push(format!("{name}: {e}"));
            }
        }
    }
    report
}

/// Runs every fixture natively.
pub fn run_native(files: &[(&str, &str)]) -> Report {
    run(
        files,
        |json, lenient| {
            let snapshot = crate::snapshot::parse_json(json).map_err(|e| e.to_string())?;
            if lenient {
                Ok(crate::Engine::from_snapshot_lenient(&snapshot).0)
            } else {
                crate::Engine::from_snapshot(&snapshot).map_err(|e| e.to_string())
            }
        },
        |engine, req| match engine.answer(req) {
            crate::protocol::EvalReply::One(e) => {
                Ok(serde_json::to_value(e).expect("evaluations serialize"))
            }
            crate::protocol::EvalReply::All(all) => {
                Ok(serde_json::to_value(all).expect("evaluations serialize"))
            }
            crate::protocol::EvalReply::BadRequest(m) => Err(m),
        },
    )
}

/// JSON equality with numbers compared by value, so `1` equals `1.0` (a
/// JavaScript host has one number type).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}
