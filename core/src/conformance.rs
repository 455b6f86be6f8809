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
//! as JSON, to [`Case::check`].

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
            if have != want {
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

/// Runs every case of `fixture` natively, returning the failures.
pub fn run_native(fixture: &Fixture) -> Vec<String> {
    let snapshot = match serde_json::from_value::<crate::Snapshot>(fixture.snapshot.clone()) {
        Ok(s) => s,
        Err(e) => return vec![format!("snapshot does not parse: {e}")],
    };
    let engine = if fixture.lenient {
        crate::Engine::from_snapshot_lenient(&snapshot).0
    } else {
        match crate::Engine::from_snapshot(&snapshot) {
            Ok(e) => e,
            Err(e) => return vec![format!("snapshot does not load: {e}")],
        }
    };
    fixture
        .cases
        .iter()
        .filter_map(|case| {
            let req = match case.request() {
                Ok(r) => r,
                Err(e) => return Some(e),
            };
            let got = match engine.answer(&req) {
                crate::protocol::EvalReply::One(e) => serde_json::to_value(e),
                crate::protocol::EvalReply::All(all) => serde_json::to_value(all),
                crate::protocol::EvalReply::BadRequest(m) => return Some(m),
            }
            .expect("evaluations serialize");
            case.check(&got).err()
        })
        .collect()
}
