//! `Engine::evaluate_all` answers, flag by flag, exactly what
//! `Engine::evaluate` answers, on a snapshot that has every shape of flag the
//! engine special-cases (disabled, without rules, with prerequisites, rules
//! over segments, rollouts, a layer) and on contexts that make each branch go
//! both ways. Guards the precomputed answers and the per-call segment memo.

use bunting_core::{Engine, Evaluation, Reason};
use serde_json::{Value, json};

const SNAPSHOT: &str = r#"{
  "schemaVersion": 1, "environment": "test", "version": 7,
  "generatedAt": "2026-12-03T00:00:00Z",
  "segments": [
    {"key": "staff", "included": ["u1", "u4"], "excluded": ["u2"],
     "condition": "department == \"eng\""},
    {"key": "beta", "included": ["u3"], "condition": "plan in [\"pro\", \"team\"]"}
  ],
  "flags": [
    {"key": "static", "type": "string", "variants": {"a": "A", "b": "B"},
     "offVariant": "b", "fallthrough": {"variant": "a"}},
    {"key": "disabled", "type": "string", "variants": {"a": "A", "b": "B"},
     "offVariant": "b", "enabled": false,
     "rules": [{"id": "r", "condition": "segment(\"staff\")", "serve": {"variant": "a"}}],
     "fallthrough": {"variant": "a"}},
    {"key": "staff-only", "type": "boolean", "variants": {"on": true, "off": false},
     "offVariant": "off",
     "rules": [{"id": "staff", "condition": "segment(\"staff\")", "serve": {"variant": "on"}}],
     "fallthrough": {"variant": "off"}},
    {"key": "beta-or-staff", "type": "string",
     "variants": {"control": "c", "treatment": "t", "off": "o"}, "offVariant": "off",
     "rules": [
       {"id": "staff", "condition": "segment(\"staff\") && !segment(\"beta\")", "serve": {"variant": "treatment"}},
       {"id": "beta", "condition": "segment(\"beta\")",
        "serve": {"rollout": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}}
     ],
     "fallthrough": {"rollout": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]}},
    {"key": "needs-staff", "type": "boolean", "variants": {"on": true, "off": false},
     "offVariant": "off",
     "prerequisites": [{"flag": "staff-only", "variant": "on"}],
     "fallthrough": {"variant": "on"}},
    {"key": "needs-static", "type": "string", "variants": {"a": "A", "b": "B"},
     "offVariant": "b",
     "prerequisites": [{"flag": "static", "variant": "a"}],
     "fallthrough": {"variant": "a"}}
  ]
}"#;

fn contexts() -> Vec<Value> {
    let mut out = vec![json!({}), json!({"plan": "pro"})];
    for (i, key) in ["u1", "u2", "u3", "u4", "u5", "u6"].iter().enumerate() {
        for department in [None, Some("eng"), Some("sales")] {
            for plan in [None, Some("pro"), Some("free")] {
                let mut ctx = json!({"targetingKey": format!("{key}-{i}")});
                if i % 2 == 0 {
                    ctx["targetingKey"] = json!(key);
                }
                if let Some(d) = department {
                    ctx["department"] = json!(d);
                }
                if let Some(p) = plan {
                    ctx["plan"] = json!(p);
                }
                out.push(ctx);
            }
        }
    }
    out
}

#[test]
fn evaluate_all_answers_what_evaluate_answers() {
    let engine = Engine::from_json(SNAPSHOT).expect("the snapshot loads");
    let keys: Vec<&str> = engine.flag_keys().collect();
    let mut reasons = std::collections::HashSet::new();
    for ctx in contexts() {
        let all = engine.evaluate_all(&ctx, 0);
        let one: Vec<Evaluation<'_>> = keys.iter().map(|k| engine.evaluate(k, &ctx, 0)).collect();
        assert_eq!(all, one, "context {ctx}");
        reasons.extend(all.iter().map(|e| {
            (
                e.key.to_string(),
                e.reason,
                e.variant.as_deref().map(str::to_string),
            )
        }));
    }
    // Every branch was taken: the comparison above is not vacuous.
    for (key, reason, variant) in [
        ("static", Reason::Static, Some("a")),
        ("disabled", Reason::Disabled, Some("b")),
        ("staff-only", Reason::TargetingMatch, Some("on")),
        ("staff-only", Reason::Default, Some("off")),
        ("beta-or-staff", Reason::TargetingMatch, Some("treatment")),
        ("beta-or-staff", Reason::Split, Some("control")),
        ("beta-or-staff", Reason::Split, Some("treatment")),
        ("beta-or-staff", Reason::Error, None),
        ("needs-staff", Reason::Default, Some("on")),
        ("needs-staff", Reason::Default, Some("off")),
        ("needs-static", Reason::Default, Some("a")),
    ] {
        let want = (key.to_string(), reason, variant.map(str::to_string));
        assert!(
            reasons.contains(&want),
            "{key} never answered {reason:?} {variant:?}"
        );
    }
}

#[test]
fn fixed_answers_still_check_the_context() {
    let engine = Engine::from_json(SNAPSHOT).expect("the snapshot loads");
    for key in ["static", "disabled"] {
        let bad = engine.evaluate(key, &json!({"targetingKey": 5}), 0);
        assert_eq!(bad.reason, Reason::Error, "{key}");
        assert_eq!(bad.value, None, "{key}");
        let not_object = engine.evaluate(key, &json!([1]), 0);
        assert_eq!(not_object.reason, Reason::Error, "{key}");
    }
    let ok = engine.evaluate("static", &json!({}), 0);
    assert_eq!(ok.value.as_deref(), Some(&json!("A")));
    assert_eq!(ok.variant.as_deref(), Some("a"));
    assert_eq!(ok.reason, Reason::Static);
    let off = engine.evaluate("disabled", &json!({"targetingKey": "u1"}), 0);
    assert_eq!(off.value.as_deref(), Some(&json!("B")));
    assert_eq!(off.reason, Reason::Disabled);
}

#[test]
fn evaluate_client_side_answers_the_client_side_flags_of_evaluate_all() {
    // Client-side: a flag whose prerequisite is hidden, a flag over
    // segments, and the last flag; the others stay server-only.
    let mut doc: Value = serde_json::from_str(SNAPSHOT).unwrap();
    for flag in doc["flags"].as_array_mut().unwrap() {
        if ["needs-staff", "beta-or-staff", "needs-static"].contains(&flag["key"].as_str().unwrap())
        {
            flag["clientSide"] = json!(true);
        }
    }
    let engine = Engine::from_json(&doc.to_string()).expect("the snapshot loads");
    let mut bad_contexts = contexts();
    bad_contexts.extend([json!([1]), json!({"targetingKey": 5})]);
    for ctx in bad_contexts {
        let want: Vec<Evaluation<'_>> = engine
            .evaluate_all(&ctx, 0)
            .into_iter()
            .filter(|e| engine.is_client_side(&e.key))
            .collect();
        let got = engine.evaluate_client_side(&ctx, 0);
        assert_eq!(got.len(), 3, "context {ctx}");
        assert_eq!(got, want, "context {ctx}");
    }
}
