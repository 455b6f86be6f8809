//! Renders [`FlagSpec`]s into each engine's native document: a sealed
//! bunting snapshot, Unleash client features (`/api/client/features`), and
//! LaunchDarkly's flag and segment data (the streaming `put` payload).

use serde_json::{Map, Value, json};

use crate::spec::{FlagSpec, STAFF, Serving, VARIANTS, internal_suffix, launch_countries};

/// Variants with weights in percent.
type Weights = &'static [(&'static str, u32)];

/// What the three-clause rule and the fallthrough serve, in percent.
fn serving_weights(serving: Serving) -> (Weights, Weights) {
    match serving {
        Serving::Rollout => (
            &[("control", 50), ("treatment", 50)],
            &[("control", 90), ("treatment", 10)],
        ),
        Serving::Fixed => (&[("control", 100)], &[("off", 100)]),
    }
}

/// `treatment` for everyone.
const TREATMENT: Weights = &[("treatment", 100)];

/// The bunting snapshot of `flags`, sealed (with its checksum), as JSON.
pub fn bunting(flags: &[FlagSpec]) -> String {
    let doc = json!({
        "schemaVersion": 1, "environment": "bench", "version": 1,
        "generatedAt": "2026-11-25T00:00:00Z",
        "segments": [{"key": "staff", "included": STAFF, "condition": "department == \"eng\""}],
        "flags": flags.iter().map(bunting_flag).collect::<Vec<_>>()
    });
    let mut snapshot =
        bunting_core::snapshot::parse_json(&doc.to_string()).expect("the rendered snapshot parses");
    bunting_core::snapshot::seal(&mut snapshot);
    serde_json::to_string(&snapshot).expect("a snapshot serializes")
}

fn bunting_flag(flag: &FlagSpec) -> Value {
    let mut doc = json!({
        "key": flag.key(),
        "type": "string",
        "variants": {"control": "control", "treatment": "treatment", "off": "off"},
        "offVariant": "off",
        "rules": [],
        "fallthrough": {"variant": "control"},
        "metadata": {"description": format!("benchmark flag {}", flag.key()), "owner": "perf", "tags": ["bench"]}
    });
    if let FlagSpec::Targeted {
        minor,
        serving,
        team,
        ..
    } = flag
    {
        let (launch, fallthrough) = match serving {
            Serving::Rollout => (
                json!({"rollout": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}),
                json!({"rollout": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]}),
            ),
            Serving::Fixed => (json!({"variant": "control"}), json!({"variant": "off"})),
        };
        let suffix = Value::from(internal_suffix(*team));
        let countries = Value::from(launch_countries(*team));
        doc["rules"] = json!([
            {"id": "internal", "condition": format!("email ends_with {suffix} || segment(\"staff\")"),
             "serve": {"variant": "treatment"}},
            {"id": "launch", "condition": format!(
                "country in {countries} && semver(app.version) >= \"2.{minor}.0\" && !(plan == \"free\")"),
             "serve": launch}
        ]);
        doc["fallthrough"] = fallthrough;
    }
    doc
}

/// Unleash client features for `flags`. Unleash's strategies are OR-ed and
/// its constraints AND-ed, so the `||` of the first rule becomes three
/// strategies (e-mail, user id in `staff`, department), each serving
/// `treatment` through a strategy variant; the three-clause rule is one
/// strategy with three constraints (`SEMVER_GTE`, `NOT_IN`), and the
/// fallthrough a last strategy without constraints. Weights are per mille,
/// bucketed on the user id (`stickiness: default`) with the flag key as
/// group id.
pub fn unleash(flags: &[FlagSpec]) -> String {
    let features: Vec<Value> = flags.iter().map(unleash_feature).collect();
    json!({"version": 2, "features": features, "query": null}).to_string()
}

/// A strategy for 100 % of the users matching `constraints`, serving
/// `variants` (weights in percent, per mille in Unleash).
fn unleash_strategy(key: &str, constraints: Value, variants: Weights) -> Value {
    json!({
        "name": "flexibleRollout",
        "parameters": {"rollout": "100", "stickiness": "default", "groupId": key},
        "constraints": constraints,
        "variants": variants.iter().map(|(name, weight)| json!({
            "name": name, "weight": weight * 10, "weightType": "fix", "stickiness": "default"
        })).collect::<Vec<_>>()
    })
}

fn unleash_feature(flag: &FlagSpec) -> Value {
    let key = flag.key();
    let strategies = match flag {
        FlagSpec::Plain { .. } => vec![unleash_strategy(key, json!([]), &[("control", 100)])],
        FlagSpec::Targeted {
            minor,
            serving,
            team,
            ..
        } => {
            let (launch, fallthrough) = serving_weights(*serving);
            vec![
                unleash_strategy(
                    key,
                    json!([{"contextName": "email", "operator": "STR_ENDS_WITH", "values": [internal_suffix(*team)]}]),
                    TREATMENT,
                ),
                unleash_strategy(
                    key,
                    json!([{"contextName": "userId", "operator": "IN", "values": STAFF}]),
                    TREATMENT,
                ),
                unleash_strategy(
                    key,
                    json!([{"contextName": "department", "operator": "IN", "values": ["eng"]}]),
                    TREATMENT,
                ),
                unleash_strategy(
                    key,
                    json!([
                        {"contextName": "country", "operator": "IN", "values": launch_countries(*team)},
                        {"contextName": "appVersion", "operator": "SEMVER_GTE", "value": format!("2.{minor}.0")},
                        {"contextName": "plan", "operator": "NOT_IN", "values": ["free"]}
                    ]),
                    launch,
                ),
                unleash_strategy(key, json!([]), fallthrough),
            ]
        }
    };
    json!({
        "name": key, "type": "release", "enabled": true,
        "description": format!("benchmark flag {key}"),
        "strategies": strategies, "variants": []
    })
}

/// LaunchDarkly flag data for `flags`: `{"flags": {key: flag}, "segments":
/// {key: segment}}`. A rule's clauses are AND-ed, so the `||` of the first
/// rule becomes two rules (e-mail, `segmentMatch` of `staff`); `>=` is a
/// negated `semVerLessThan`, `!(plan == "free")` a negated `in`. Weights
/// are per 100,000, bucketed on the context key with the flag key as salt.
pub fn launchdarkly(flags: &[FlagSpec]) -> String {
    let flags: Map<String, Value> = flags
        .iter()
        .map(|flag| (flag.key().to_string(), ld_flag(flag)))
        .collect();
    let staff = json!({
        "key": "staff", "version": 1, "salt": "staff",
        "included": STAFF, "excluded": [],
        "rules": [{"id": "eng", "clauses": [
            {"contextKind": "user", "attribute": "department", "op": "in", "values": ["eng"], "negate": false}
        ]}]
    });
    json!({"flags": flags, "segments": {"staff": staff}}).to_string()
}

fn ld_index(variant: &str) -> usize {
    VARIANTS
        .iter()
        .position(|v| *v == variant)
        .expect("a known variant")
}

fn ld_serve(weights: &[(&str, u32)]) -> Value {
    match weights {
        [(variant, _)] => json!({"variation": ld_index(variant)}),
        _ => json!({"rollout": {"variations": weights.iter().map(|(variant, weight)| json!({
            "variation": ld_index(variant), "weight": weight * 1000
        })).collect::<Vec<_>>()}}),
    }
}

fn ld_rule(id: &str, clauses: Value, serve: &[(&str, u32)]) -> Value {
    let mut rule = json!({"id": id, "clauses": clauses, "trackEvents": false});
    if let (Value::Object(rule), Value::Object(serve)) = (&mut rule, ld_serve(serve)) {
        rule.extend(serve);
    }
    rule
}

fn ld_flag(flag: &FlagSpec) -> Value {
    let key = flag.key();
    let (rules, fallthrough) = match flag {
        FlagSpec::Plain { .. } => (vec![], ld_serve(&[("control", 100)])),
        FlagSpec::Targeted {
            minor,
            serving,
            team,
            ..
        } => {
            let (launch, fallthrough) = serving_weights(*serving);
            let clause = |attribute: &str, op: &str, values: Value, negate: bool| json!({"contextKind": "user", "attribute": attribute, "op": op, "values": values, "negate": negate});
            let rules = vec![
                ld_rule(
                    "internal-email",
                    json!([clause(
                        "email",
                        "endsWith",
                        json!([internal_suffix(*team)]),
                        false
                    )]),
                    TREATMENT,
                ),
                ld_rule(
                    "internal-staff",
                    json!([clause("", "segmentMatch", json!(["staff"]), false)]),
                    TREATMENT,
                ),
                ld_rule(
                    "launch",
                    json!([
                        clause("country", "in", json!(launch_countries(*team)), false),
                        clause(
                            "/app/version",
                            "semVerLessThan",
                            json!([format!("2.{minor}.0")]),
                            true
                        ),
                        clause("plan", "in", json!(["free"]), true)
                    ]),
                    launch,
                ),
            ];
            (rules, ld_serve(fallthrough))
        }
    };
    json!({
        "key": key, "version": 1, "on": true, "salt": key,
        "targets": [], "contextTargets": [], "prerequisites": [],
        "rules": rules, "fallthrough": fallthrough, "offVariation": ld_index("off"),
        "variations": VARIANTS, "clientSide": false, "trackEvents": false
    })
}
