//! Snapshot loading: validation reports every problem, checksums are
//! verified, lenient loads keep the good flags.

use bunting_core::snapshot::{checksum, parse_json, seal};
use bunting_core::{Engine, ErrorCode, LoadError, Reason};
use serde_json::{Value, json};

fn doc(flags: Value) -> Value {
    json!({"schemaVersion": 1, "environment": "test", "version": 3,
           "generatedAt": "2026-11-25T00:00:00Z", "flags": flags,
           "segments": [{"key": "staff", "included": ["s1"]}],
           "layers": [{"key": "L"}]})
}

fn problems(d: &Value) -> Vec<String> {
    match Engine::from_json(&d.to_string()) {
        Err(LoadError::Invalid(p)) => p.iter().map(|p| p.to_string()).collect(),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

#[test]
fn every_problem_is_reported_with_flag_path_and_message() {
    let d = doc(json!([
        {"key": "a", "type": "boolean", "variants": {"on": true, "off": 0}, "offVariant": "of",
         "rules": [{"condition": "x in [1,\n 2 && y", "serve": {"variant": "on"}},
                   {"condition": "segment(\"nobody\")", "serve": {"variant": "nope"}}],
         "fallthrough": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 40.0001}]}},
        {"key": "b", "type": "string", "variants": {"x": "x"}, "offVariant": "x",
         "prerequisites": [{"flag": "zzz", "variant": "on"}, {"flag": "a", "variant": "maybe"}],
         "fallthrough": {"schedule": {"variant": "x", "otherwise": "x", "steps": [
             {"at": "2026-12-02T00:00:00Z", "percentage": 10}, {"at": "2026-12-01T00:00:00Z", "percentage": 120}]}},
         "layer": {"key": "M", "start": 0, "end": 10}},
        {"key": "a", "type": "number", "variants": {"n": 1}, "offVariant": "n", "fallthrough": {"variant": "n"}}
    ]));
    let got = problems(&d);
    let expect = [
        "a: flags[0].variants.off: value 0 is not of the flag's type boolean",
        "a: flags[0].offVariant: unknown variant \"of\"",
        "a: flags[0].rules[0].condition: 2:4: expected `,` or `]`, found `&&`",
        "a: flags[0].rules[1].serve.variant: unknown variant \"nope\"",
        "a: flags[0].rules[1].condition: 1:9: expected a known segment (no segment \"nobody\" in this snapshot), found string \"nobody\"",
        "a: flags[0].fallthrough.rollout[1].weight: weight 40.0001 must be a percentage 0–100 with at most three decimals",
        "a: flags[0].fallthrough.rollout: weights sum to 50%, not 100%",
        "b: flags[1].prerequisites[0].flag: unknown flag \"zzz\"",
        "b: flags[1].prerequisites[1].variant: flag \"a\" has no variant \"maybe\"",
        "b: flags[1].fallthrough.schedule.steps[1].percentage: 120 must be a percentage 0–100 with at most three decimals",
        "b: flags[1].layer.key: unknown layer \"M\"",
        "a: flags[2].key: duplicate flag key",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g == e),
            "missing problem {e:?}\n got: {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "{got:#?}");
}

#[test]
fn schedule_order_layer_overlap_and_cycles() {
    let d = doc(json!([
        {"key": "p", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
         "prerequisites": [{"flag": "q", "variant": "on"}], "fallthrough": {"variant": "on"},
         "layer": {"key": "L", "start": 0, "end": 60}},
        {"key": "q", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
         "prerequisites": [{"flag": "p", "variant": "on"}],
         "fallthrough": {"schedule": {"variant": "on", "otherwise": "on", "steps": [
             {"at": "2026-12-02T00:00:00Z", "percentage": 10}, {"at": "2026-12-01T00:00:00Z", "percentage": 20}]}},
         "layer": {"key": "L", "start": 50, "end": 100}}
    ]));
    let got = problems(&d).join("\n");
    assert!(
        got.contains("steps must be in strictly increasing time order"),
        "{got}"
    );
    assert!(
        got.contains("range overlaps flag \"p\" in layer \"L\""),
        "{got}"
    );
    assert!(got.contains("prerequisite cycle: p -> q -> p"), "{got}");
}

#[test]
fn schema_version_and_syntax_errors() {
    let mut d = doc(json!([]));
    d["schemaVersion"] = json!(2);
    assert_eq!(
        problems(&d),
        ["schemaVersion: schema version 2 is not supported by this engine (it reads 1)"]
    );
    match Engine::from_json("{\"schemaVersion\": 1,\n  \"flags\": [}") {
        Err(LoadError::Syntax {
            line: 2, column, ..
        }) => assert_eq!(column, 13),
        other => panic!("{other:?}"),
    }
    let mut d = doc(json!([]));
    d["surprise"] = json!(true);
    assert!(matches!(
        Engine::from_json(&d.to_string()),
        Err(LoadError::Syntax { .. })
    ));
}

#[test]
fn checksum_round_trips_and_detects_tampering() {
    let d = doc(
        json!([{"key": "f", "type": "number", "variants": {"a": 1, "b": 2.5}, "offVariant": "a",
                         "fallthrough": {"variant": "b"}}]),
    );
    let mut s = parse_json(&d.to_string()).unwrap();
    seal(&mut s);
    let sealed = serde_json::to_string(&s).unwrap();
    let engine = Engine::from_json(&sealed).expect("sealed snapshot loads");
    assert_eq!(engine.version(), 3);
    // Re-serialising in another key order does not change the checksum.
    let reordered: Value = serde_json::from_str(&sealed).unwrap();
    assert!(Engine::from_json(&serde_json::to_string_pretty(&reordered).unwrap()).is_ok());
    let tampered = sealed.replace("2.5", "3.5");
    let got = problems(&serde_json::from_str(&tampered).unwrap()).join("\n");
    assert!(
        got.starts_with("checksum: checksum mismatch: document says sha256:"),
        "{got}"
    );
    assert_eq!(checksum(&s).len(), "sha256:".len() + 64);
}

#[test]
fn lenient_load_serves_good_flags_and_errors_bad_ones() {
    let d = doc(json!([
        {"key": "good", "type": "boolean", "variants": {"on": true}, "offVariant": "on", "fallthrough": {"variant": "on"}},
        {"key": "bad-rule", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
         "rules": [{"condition": "country ==", "serve": {"variant": "on"}}], "fallthrough": {"variant": "on"}},
        {"key": "bad-ref", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
         "prerequisites": [{"flag": "gone", "variant": "on"}], "fallthrough": {"variant": "on"}},
        {"key": "needs-bad", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
         "prerequisites": [{"flag": "bad-rule", "variant": "on"}], "fallthrough": {"variant": "on"}}
    ]));
    let snapshot = parse_json(&d.to_string()).unwrap();
    assert!(Engine::from_snapshot(&snapshot).is_err());
    let (engine, problems) = Engine::from_snapshot_lenient(&snapshot);
    assert_eq!(problems.len(), 2, "{problems:?}");
    let ctx = json!({"targetingKey": "u"});
    assert_eq!(engine.evaluate("good", &ctx, 0).reason, Reason::Static);
    let bad = engine.evaluate("bad-rule", &ctx, 0);
    assert_eq!(bad.error_code, Some(ErrorCode::ParseError));
    assert!(bad.error_message.unwrap().contains("1:11"));
    assert_eq!(
        engine.evaluate("bad-ref", &ctx, 0).error_code,
        Some(ErrorCode::General)
    );
    let chained = engine.evaluate("needs-bad", &ctx, 0);
    assert_eq!(chained.error_code, Some(ErrorCode::ParseError));
    assert!(
        chained
            .error_message
            .unwrap()
            .starts_with("prerequisite \"bad-rule\" failed")
    );
}

/// Flags with the same condition text share one compiled condition: each
/// still answers for itself, and a shared parse error is reported, and
/// breaks, every flag that uses it.
#[test]
fn a_condition_shared_by_flags_answers_and_fails_for_each() {
    let flag = |key: &str, condition: &str| {
        json!({"key": key, "type": "boolean", "variants": {"on": true, "off": false},
               "offVariant": "off", "fallthrough": {"variant": "off"},
               "rules": [{"condition": condition, "serve": {"variant": "on"}}]})
    };
    let ok = doc(json!([
        flag("a", "plan == \"pro\" || segment(\"staff\")"),
        flag("b", "plan == \"pro\" || segment(\"staff\")"),
        flag("c", "plan == \"free\"")
    ]));
    let engine = Engine::from_json(&ok.to_string()).unwrap();
    for (ctx, want) in [
        (
            json!({"targetingKey": "u", "plan": "pro"}),
            [true, true, false],
        ),
        (
            json!({"targetingKey": "s1", "plan": "free"}),
            [true, true, true],
        ),
    ] {
        let got: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|k| {
                engine
                    .evaluate(k, &ctx, 0)
                    .value
                    .unwrap()
                    .as_bool()
                    .unwrap()
            })
            .collect();
        assert_eq!(got, want, "{ctx}");
    }
    let bad = doc(json!([
        flag("a", "plan = \"pro\""),
        flag("b", "plan == \"pro\""),
        flag("c", "plan = \"pro\"")
    ]));
    assert_eq!(
        problems(&bad),
        [
            "a: flags[0].rules[0].condition: 1:6: expected `==`, found `=`",
            "c: flags[2].rules[0].condition: 1:6: expected `==`, found `=`",
        ]
    );
    let mut snapshot = parse_json(&bad.to_string()).unwrap();
    seal(&mut snapshot);
    let (engine, _) = Engine::from_snapshot_lenient(&snapshot);
    let ctx = json!({"targetingKey": "u", "plan": "pro"});
    let codes: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|k| engine.evaluate(k, &ctx, 0).error_code)
        .collect();
    assert_eq!(
        codes,
        [
            Some(ErrorCode::ParseError),
            None,
            Some(ErrorCode::ParseError)
        ]
    );
}
