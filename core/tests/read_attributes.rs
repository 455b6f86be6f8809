//! `Engine::reads_attribute` against every conformance fixture: leaving
//! out of a context what the snapshot does not read, or adding what it does
//! not read, never changes an answer; leaving out what it reads does change
//! some (so the check is not vacuous).

mod common;

use bunting_core::Engine;
use bunting_core::conformance::Fixture;
use serde_json::{Value, json};

/// A fixture's name, engine, and its cases as `(context, now_ms)`.
type Loaded = (String, Engine, Vec<(Value, i64)>);

/// Every fixture, loaded.
fn fixtures() -> Vec<Loaded> {
    common::fixtures::FIXTURES
        .iter()
        .filter_map(|(name, text)| {
            let fixture: Fixture = serde_json::from_str(text).unwrap();
            let engine = Engine::from_json_lenient(&fixture.snapshot.to_string())
                .ok()?
                .0;
            let cases = fixture
                .cases
                .iter()
                .filter_map(|c| c.request().ok())
                .filter(|r| r.context.is_object())
                .map(|r| (r.context, r.now_ms))
                .collect();
            Some((name.to_string(), engine, cases))
        })
        .collect()
}

/// Every flag's answer (as JSON) for `context`.
fn answers(engine: &Engine, context: &Value, now_ms: i64) -> Vec<Value> {
    engine
        .evaluate_all(context, now_ms)
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

/// `context` with only the top-level attributes `keep` says yes to.
fn filtered(context: &Value, keep: impl Fn(&str) -> bool) -> Value {
    let map = context.as_object().unwrap();
    Value::Object(
        map.iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[test]
fn unread_attributes_never_change_an_answer() {
    let mut removed = 0;
    let mut cases = 0;
    for (name, engine, contexts) in fixtures() {
        for (context, now) in &contexts {
            cases += 1;
            let want = answers(&engine, context, *now);
            let read_only = filtered(context, |k| engine.reads_attribute(k));
            removed += context.as_object().unwrap().len() - read_only.as_object().unwrap().len();
            assert_eq!(
                answers(&engine, &read_only, *now),
                want,
                "{name}: {context} without its unread attributes"
            );
            // What the edge adds when the snapshot reads it: anything else
            // under those names is ignored as well.
            let mut extra = context.clone();
            for (k, v) in [
                ("geo", json!({"country": "FR", "city": "Paris"})),
                ("device", json!({"type": "mobile"})),
                ("unread-attribute-x", json!([1, 2])),
            ] {
                if !engine.reads_attribute(k) {
                    extra[k] = v;
                }
            }
            assert_eq!(
                answers(&engine, &extra, *now),
                want,
                "{name}: {context} with unread attributes added"
            );
        }
    }
    assert!(cases >= 100, "only {cases} cases");
    assert!(removed > 0, "no case had an unread attribute to remove");
}

#[test]
fn read_attributes_do_change_answers() {
    // Removing every attribute the snapshot reads changes some answer in
    // most fixtures: the names are the ones that matter.
    let mut changed = 0;
    for (_, engine, contexts) in fixtures() {
        for (context, now) in &contexts {
            let stripped = filtered(context, |k| !engine.reads_attribute(k));
            if answers(&engine, &stripped, *now) != answers(&engine, context, *now) {
                changed += 1;
            }
        }
    }
    assert!(changed >= 50, "only {changed} contexts changed");
}

#[test]
fn every_kind_of_reference_counts() {
    let engine = Engine::from_json(
        r#"{"schemaVersion": 1, "environment": "prod", "version": 1,
        "generatedAt": "2026-12-06T00:00:00Z",
        "segments": [{"key": "s", "condition": "seg.attr == 1"}],
        "layers": [{"key": "l", "bucketBy": "org.id"}],
        "flags": [
          {"key": "a", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
           "rules": [
             {"id": "r1", "condition": "semver(app.version) >= \"2.0.0\" && lower(email) ends_with \"x\"", "serve": {"variant": "on"}},
             {"id": "r2", "condition": "exists(beta) || !(datetime(signup) < now) || segment(\"s\")", "serve": {"variant": "on"}},
             {"id": "r3", "condition": "tier in allowed", "serve": {"variant": "on"}},
             {"id": "r4", "condition": "semver(app.version) >= \"2.0.0\" && lower(email) ends_with \"x\"", "serve": {"variant": "off"}}
           ],
           "fallthrough": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]},
           "bucketBy": "account.id"},
          {"key": "b", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
           "layer": {"key": "l", "start": 0, "end": 50},
           "rules": [{"id": "r", "condition": "flagged", "serve": {"variant": "on"}}],
           "fallthrough": {"variant": "off"}}
        ]}"#,
    )
    .unwrap();
    for read in [
        "app",
        "email",
        "beta",
        "signup",
        "seg",
        "tier",
        "allowed",
        "account",
        "org",
        "flagged",
        "targetingKey",
    ] {
        assert!(engine.reads_attribute(read), "{read} is read");
    }
    for unread in ["version", "now", "s", "geo", "device", "on", "x", ""] {
        assert!(!engine.reads_attribute(unread), "{unread} is not read");
    }
}
