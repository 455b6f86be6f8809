//! The packed snapshot: a snapshot packed and read back loads as its
//! document does (the same flags, problems, checksum and answers), and
//! bytes that are not a whole packed snapshot fail with a typed error,
//! never a panic.

mod common;

use bunting_core::conformance::{Fixture, run};
use bunting_core::packed::{
    FORMAT_VERSION, FORMAT_VERSION_1, MAGIC, MAX_DEPTH, PackError, PackedError, document, pack,
    pack_as, pack_with_document, tables, without_document,
};
use bunting_core::protocol::EvalReply;
use bunting_core::snapshot::{parse_json, seal};
use bunting_core::time::parse_rfc3339_ms;
use bunting_core::{Engine, ParsedSnapshot};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A snapshot like the edge benchmark's (`edge-worker/benches/common`):
/// 1,000 flags with two rules each, sealed (it declares its checksum).
fn bench_like() -> String {
    let flags: Vec<_> = (0..1000).map(|i| json!({
        "key": format!("flag-{i}"), "type": "string",
        "variants": {"control": "control", "treatment": "treatment", "off": "off"}, "offVariant": "off",
        "rules": [{"id": "internal", "condition": "email ends_with \"@bunting.dev\" || segment(\"staff\")", "serve": {"variant": "treatment"}},
                  {"id": "launch", "condition": format!("country in [\"US\", \"CA\", \"GB\"] && semver(app.version) >= \"2.{}.0\" && !(plan == \"free\")", i % 7),
                   "serve": {"rollout": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}}],
        "fallthrough": {"rollout": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]},
        "metadata": {"description": format!("benchmark flag {i}"), "owner": "perf", "tags": ["bench"]}})).collect();
    let doc = json!({"schemaVersion": 1, "environment": "bench", "version": 7, "generatedAt": "2026-11-25T00:00:00Z",
        "segments": [{"key": "staff", "included": ["admin-1", "admin-2"], "condition": "department == \"eng\""}], "flags": flags});
    let mut snapshot = parse_json(&doc.to_string()).unwrap();
    seal(&mut snapshot);
    serde_json::to_string(&snapshot).unwrap()
}

/// Every field of the model set, with escapes, numbers of every form
/// (integers, negative, whole and negative-zero floats, large), nested
/// values, a variant name written twice, a wrong checksum, lists of zero
/// to four items and flags with problems.
const FULL: &str = r#"{"schemaVersion": 1, "environment": "pro\"d", "version": 18446744073709551615,
  "generatedAt": "2026-11-25T00:00:00Z", "checksum": "sha256:00",
  "flags": [
    {"key": "a\u00e9", "type": "object",
     "variants": {"z": {"b": 1, "a": [1.5, "x\n", null, true, false, -3, {"deep": [[[]]]}]}, "\u00e9": {}, "y": {"n": -0.0}},
     "enabled": false, "offVariant": "z", "salt": "s", "bucketBy": "user.id",
     "clientSide": true, "layer": {"key": "l", "start": 0.5, "end": 10},
     "rules": [{"id": "r", "description": "d\t", "condition": "x == \"\\\"\"",
                "serve": {"schedule": {"variant": "z", "otherwise": "y",
                   "steps": [{"at": "2026-01-01T00:00:00Z", "percentage": 12.5},
                             {"at": "2026-02-01T00:00:00Z", "percentage": 100}]}}}],
     "fallthrough": {"rollout": [{"variant": "z", "weight": 100}]},
     "prerequisites": [{"flag": "b", "variant": "on"}],
     "metadata": {"description": "m", "owner": "o", "tags": ["t", "u\""]}},
    {"key": "b", "type": "boolean", "variants": {"on": true, "off": false},
     "offVariant": "off", "fallthrough": {"variant": "on"}, "metadata": {"owner": "o2"}},
    {"key": "c", "type": "number", "variants": {"n": 1e300, "m": -0.0, "k": 12, "j": -7, "i": 18446744073709551615, "h": 2.0, "n": 3},
     "offVariant": "n", "fallthrough": {"variant": "k"}, "metadata": {"tags": ["t", "u", "v", "w"]},
     "rules": [{"description": "only", "condition": "a < 1.5e-7", "serve": {"variant": "m"}},
               {"condition": "now > 2026-06-01T00:00:00Z", "serve": {"rollout": [
                 {"variant": "k", "weight": 25}, {"variant": "j", "weight": 25.5},
                 {"variant": "i", "weight": 0.001}, {"variant": "h", "weight": 49.499}]}}]},
    {"key": "d", "type": "string", "variants": {"x": "x", "y": "\"y\""}, "offVariant": "x",
     "fallthrough": {"rollout": [{"variant": "x", "weight": 60}, {"variant": "y", "weight": 40}]},
     "layer": {"key": "l", "start": 20, "end": 30}, "metadata": {"tags": []}},
    {"key": "e", "type": "string", "variants": {"x": "x", "y": "\"y\""}, "offVariant": "nope",
     "rules": [{"condition": "x in [1,\n 2 && y", "serve": {"variant": "x"}},
               {"condition": "segment(\"nobody\")", "serve": {"variant": "y"}}],
     "fallthrough": {"rollout": [{"variant": "x", "weight": 50}, {"variant": "y", "weight": 40.0001}]},
     "layer": {"key": "l", "start": 25, "end": 35}},
    {"key": "", "type": "number", "variants": {}, "offVariant": "n", "fallthrough": {"rollout": []}},
    {"key": "b", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
     "prerequisites": [{"flag": "f", "variant": "on"}], "fallthrough": {"variant": "on"}},
    {"key": "f", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
     "prerequisites": [{"flag": "b", "variant": "on"}], "fallthrough": {"variant": "on"}}
  ],
  "segments": [{"key": "s", "included": ["a", "b\""], "excluded": ["c"],
                "condition": "true", "description": "d"},
               {"key": "t", "condition": "segment(\"s\")"}, {"key": "u"}],
  "layers": [{"key": "l", "salt": "x", "bucketBy": "k"}, {"key": "m"}]}"#;

/// Flags with the same rules (one packed rule list) and fallthroughs,
/// some with the same variants (whose compiled rules and fallthroughs are
/// shared), some with other variants or with problems in their rules or
/// fallthroughs (reported for every flag that has them): rule lists in
/// the same and in another order, an unknown variant, a duplicate id, a
/// condition that does not parse, weights that do not sum to 100.
const SHARED_RULES: &str = r#"{"schemaVersion": 1, "environment": "e", "version": 1,
  "generatedAt": "2026-11-25T00:00:00Z",
  "flags": [
    {"key": "a", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"condition": "country == \"US\"", "serve": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}],
     "fallthrough": {"variant": "off"}},
    {"key": "b", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"condition": "country == \"US\"", "serve": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}],
     "fallthrough": {"variant": "on"}, "metadata": {"description": "b", "owner": "o", "tags": ["t"]}},
    {"key": "c", "type": "string", "variants": {"on": "ON", "off": "off", "more": "m"}, "offVariant": "more",
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"condition": "country == \"US\"", "serve": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}],
     "fallthrough": {"variant": "off"}},
    {"key": "d", "type": "string", "variants": {"off": "off", "other": "o"}, "offVariant": "off",
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"condition": "country == \"US\"", "serve": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}],
     "fallthrough": {"variant": "off"}},
    {"key": "e", "type": "string", "variants": {"off": "off", "other": "o"}, "offVariant": "other",
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"condition": "country == \"US\"", "serve": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}],
     "fallthrough": {"variant": "off"}},
    {"key": "f", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "rules": [{"condition": "country == \"US\"", "serve": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}},
               {"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}}],
     "fallthrough": {"variant": "off"}},
    {"key": "g", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}}],
     "fallthrough": {"variant": "off"}},
    {"key": "h", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}}],
     "fallthrough": {"variant": "off"}},
    {"key": "i", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "rules": [{"condition": "plan ==", "serve": {"variant": "on"}}], "fallthrough": {"variant": "off"}},
    {"key": "j", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "rules": [{"condition": "plan ==", "serve": {"variant": "on"}}], "fallthrough": {"variant": "off"}},
    {"key": "k", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "enabled": false, "fallthrough": {"variant": "off"},
     "rules": [{"id": "x", "condition": "plan == \"pro\"", "serve": {"variant": "on"}},
               {"condition": "country == \"US\"", "serve": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 50}]}}]},
    {"key": "l", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "fallthrough": {"variant": "on"}, "metadata": {"tags": ["a", "b", "c"]}},
    {"key": "m", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "fallthrough": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 40}]}},
    {"key": "n", "type": "string", "variants": {"on": "on", "off": "off"}, "offVariant": "off",
     "fallthrough": {"rollout": [{"variant": "on", "weight": 50}, {"variant": "off", "weight": 40}]}}
  ]}"#;

/// Contexts with the times to evaluate them at.
type Contexts = Vec<(Value, i64)>;

/// `(name, document, contexts)` for every snapshot the tests compare: the
/// conformance fixtures (with their cases' contexts), the benchmark-like
/// one and [`FULL`].
fn documents() -> Vec<(String, String, Contexts)> {
    let generic: Contexts = [
        json!({}),
        json!({"targetingKey": "u1"}),
        json!({"targetingKey": "u2", "email": "a@bunting.dev", "country": "US",
               "app": {"version": "2.3.1"}, "plan": "pro", "department": "eng", "x": "\"", "a": 0}),
        json!({"targetingKey": "admin-1", "user": {"id": "z"}, "k": "q", "x": 1}),
    ]
    .into_iter()
    .flat_map(|c| {
        [
            (c.clone(), 0),
            (c.clone(), parse_rfc3339_ms("2026-01-15T00:00:00Z").unwrap()),
            (c, parse_rfc3339_ms("2026-12-01T00:00:00Z").unwrap()),
        ]
    })
    .collect();
    let mut docs = Vec::new();
    for (name, text) in common::fixtures::FIXTURES {
        let fixture: Fixture = serde_json::from_str(text).unwrap();
        let mut contexts = generic.clone();
        for case in &fixture.cases {
            contexts.push((case.context.clone(), parse_rfc3339_ms(&case.now).unwrap()));
        }
        docs.push((name.to_string(), fixture.snapshot.to_string(), contexts));
    }
    docs.push(("bench-like".into(), bench_like(), generic.clone()));
    docs.push(("full".into(), FULL.to_string(), generic.clone()));
    docs.push((
        "shared rules".into(),
        SHARED_RULES.to_string(),
        generic.clone(),
    ));
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(FULL).unwrap());
    docs.push(("full, pretty".into(), pretty.unwrap(), generic));
    docs
}

/// What a host reads from a parse besides the engine, as text.
fn described(parsed: &ParsedSnapshot<'_>) -> String {
    let mut out = format!(
        "{} {} {:?}\n",
        parsed.environment(),
        parsed.version(),
        parsed.checksum()
    );
    for f in parsed.flags() {
        out += &format!("{:?} {:?}", f.key(), f.flag_type());
        for (name, value) in f.variants() {
            // The text tells `1` from `1.0` and `0.0` from `-0.0`.
            out += &format!(" {name:?}={}", serde_json::to_string(value).unwrap());
        }
        out += &format!(
            " rules={:?} steps={:?}\n",
            f.rule_conditions().collect::<Vec<_>>(),
            f.schedule_steps().collect::<Vec<_>>()
        );
    }
    out += &format!("{:?}", parsed.segment_conditions().collect::<Vec<_>>());
    out
}

/// Every answer of `engine` for `contexts`, one flag at a time and all at
/// once, as JSON text.
fn answers(engine: &Engine, contexts: &[(Value, i64)]) -> Vec<String> {
    let mut out = Vec::new();
    for (context, now) in contexts {
        for key in engine.flag_keys() {
            let e = engine.evaluate(key, context, *now);
            out.push(serde_json::to_string(&e).unwrap());
        }
        let e = engine.evaluate("no-such-flag", context, *now);
        out.push(serde_json::to_string(&e).unwrap());
        out.push(serde_json::to_string(&engine.evaluate_all(context, *now)).unwrap());
    }
    out
}

#[test]
fn a_packed_snapshot_loads_as_its_document() {
    for (name, doc, contexts) in documents() {
        let json = ParsedSnapshot::parse(&doc).unwrap();
        let bytes = pack(&json).unwrap();
        let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
        assert_eq!(described(&packed), described(&json), "{name}");
        // Packing what was read gives the same bytes.
        assert_eq!(pack(&packed).unwrap(), bytes, "{name}");

        let (from_json, json_problems) = Engine::from_parsed_lenient(&json);
        let (from_packed, packed_problems) = Engine::from_parsed_lenient(&packed);
        assert_eq!(packed_problems, json_problems, "{name}");
        assert_eq!(
            Engine::from_parsed(&packed).map(|_| ()),
            Engine::from_parsed(&json).map(|_| ()),
            "{name}"
        );
        assert_eq!(
            (
                from_packed.environment(),
                from_packed.version(),
                from_packed.generated_at()
            ),
            (
                from_json.environment(),
                from_json.version(),
                from_json.generated_at()
            )
        );
        assert!(from_packed.flag_keys().eq(from_json.flag_keys()), "{name}");
        let (a, b) = (
            answers(&from_packed, &contexts),
            answers(&from_json, &contexts),
        );
        assert!(!a.is_empty());
        assert_eq!(a, b, "{name}");

        // Version 1 (condition texts, parsed at load) reads as version 2
        // (conditions precompiled by the packer): same problems, answers.
        let v1 = pack_as(&json, None, FORMAT_VERSION_1).unwrap();
        assert_eq!(v1[4..6], FORMAT_VERSION_1.to_le_bytes());
        let old = ParsedSnapshot::from_packed(&v1).unwrap();
        assert_eq!(described(&old), described(&json), "{name}");
        let (from_v1, v1_problems) = Engine::from_parsed_lenient(&old);
        assert_eq!(v1_problems, json_problems, "{name}");
        assert_eq!(answers(&from_v1, &contexts), b, "{name}");
        assert_eq!(pack(&old).unwrap(), bytes, "{name}");
    }
}

/// The documents' own checks hold through the packed form: the sealed
/// benchmark-like snapshot verifies, `FULL`'s wrong checksum is reported,
/// and the problems of its broken flags are there.
#[test]
fn checksums_and_problems_survive_packing() {
    let doc = bench_like();
    let bytes = pack(&ParsedSnapshot::parse(&doc).unwrap()).unwrap();
    let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
    assert!(packed.checksum().unwrap().starts_with("sha256:"));
    assert!(Engine::from_parsed(&packed).is_ok());

    let bytes = pack(&ParsedSnapshot::parse(FULL).unwrap()).unwrap();
    let (_, problems) = Engine::from_parsed_lenient(&ParsedSnapshot::from_packed(&bytes).unwrap());
    let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    for want in [
        "checksum: checksum mismatch: document says sha256:00",
        "e: flags[4].offVariant: unknown variant \"nope\"",
        "e: flags[4].rules[0].condition: 2:4: expected `,` or `]`, found `&&`",
        "flags[5].key: must not be empty",
        "b: flags[6].key: duplicate flag key",
        "e: flags[4].layer: range overlaps flag \"d\" in layer \"l\"",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {problems:#?}"
        );
    }
}

/// Flags that share a packed rule list or fallthrough each report the
/// problems of their rules and fallthrough, and answer with their own
/// variants.
#[test]
fn shared_rules_report_and_answer_per_flag() {
    let bytes = pack(&ParsedSnapshot::parse(SHARED_RULES).unwrap()).unwrap();
    let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
    let (engine, problems) = Engine::from_parsed_lenient(&packed);
    let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let reported = |want: String| {
        assert!(
            problems.contains(&want),
            "missing {want:?} in {problems:#?}"
        )
    };
    for (flag, at) in [("d", 3), ("e", 4)] {
        for rule in [
            "rules[0].serve.variant",
            "rules[1].serve.rollout[0].variant",
        ] {
            reported(format!(
                "{flag}: flags[{at}].{rule}: unknown variant \"on\""
            ));
        }
    }
    for (flag, at) in [("g", 6), ("h", 7)] {
        reported(format!(
            "{flag}: flags[{at}].rules[1].id: duplicate rule id \"x\""
        ));
    }
    for (flag, at) in [("m", 12), ("n", 13)] {
        reported(format!(
            "{flag}: flags[{at}].fallthrough.rollout: weights sum to 90%, not 100%"
        ));
    }
    for (flag, at) in [("i", 8), ("j", 9)] {
        let want = format!("{flag}: flags[{at}].rules[0].condition");
        assert!(
            problems.iter().any(|p| p.starts_with(&want)),
            "missing {want:?} in {problems:#?}"
        );
    }
    let pro = json!({"targetingKey": "u", "plan": "pro"});
    let value = |key: &str| engine.evaluate(key, &pro, 0).value.map(|v| v.into_owned());
    assert_eq!(value("a"), Some(json!("on")));
    assert_eq!(value("c"), Some(json!("ON")));
    assert_eq!(value("k"), Some(json!("off")));
    let none = json!({"targetingKey": "u"});
    let value = |key: &str| engine.evaluate(key, &none, 0).value.map(|v| v.into_owned());
    assert_eq!(value("a"), Some(json!("off")));
    assert_eq!(value("b"), Some(json!("on")));
    assert_eq!(value("c"), Some(json!("off")));
    assert_eq!(value("l"), Some(json!("on")));
    let us = json!({"targetingKey": "u", "country": "US"});
    assert_eq!(
        engine.evaluate("a", &us, 0).rule_id.as_deref(),
        Some("rule-1")
    );
    assert_eq!(
        engine.evaluate("f", &us, 0).rule_id.as_deref(),
        Some("rule-0")
    );
}

/// Every flag's metadata (built on first use) is the model's, from the
/// document and from its packed form, the first time and after.
#[test]
fn metadata_is_the_models() {
    for (name, doc, _) in documents() {
        let model = parse_json(&doc).unwrap();
        let json = ParsedSnapshot::parse(&doc).unwrap();
        let bytes = pack(&json).unwrap();
        let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
        for engine in [
            Engine::from_parsed_lenient(&json).0,
            Engine::from_parsed_lenient(&packed).0,
        ] {
            let mut seen = 0;
            for key in engine.flag_keys() {
                // The later of two flags with one key is the one evaluated.
                let flag = model.flags.iter().rev().find(|f| f.key == key).unwrap();
                for _ in 0..2 {
                    let e = engine.evaluate(key, &json!({"targetingKey": "u"}), 0);
                    assert_eq!(e.metadata.as_deref(), Some(&flag.metadata), "{name}: {key}");
                }
                seen += usize::from(flag.metadata != Default::default());
            }
            assert!(seen > 0 || !doc.contains("\"metadata\""), "{name}");
        }
    }
}

/// The conformance suite passes on engines loaded from packed snapshots.
#[test]
fn conformance_through_the_packed_form() {
    let report = run(
        common::fixtures::FIXTURES,
        |json, lenient| {
            let parsed = ParsedSnapshot::parse(json).map_err(|e| e.to_string())?;
            let bytes = pack(&parsed).map_err(|e| e.to_string())?;
            let packed = ParsedSnapshot::from_packed(&bytes).map_err(|e| e.to_string())?;
            if lenient {
                Ok(Engine::from_parsed_lenient(&packed).0)
            } else {
                Engine::from_parsed(&packed).map_err(|e| e.to_string())
            }
        },
        |engine, req| match engine.answer(req) {
            EvalReply::One(e) => Ok(serde_json::to_value(e).unwrap()),
            EvalReply::All(all) => Ok(serde_json::to_value(all).unwrap()),
            EvalReply::BadRequest(m) => Err(m),
        },
    );
    report.assert_clean("through the packed form");
    assert!(report.cases >= 150, "only {} cases", report.cases);
}

#[test]
fn the_packed_form_is_smaller() {
    let doc = bench_like();
    let bytes = pack(&ParsedSnapshot::parse(&doc).unwrap()).unwrap();
    assert!(
        bytes.len() * 10 < doc.len(),
        "{} bytes packed, {} as JSON",
        bytes.len(),
        doc.len()
    );
}

fn small_packed() -> Vec<u8> {
    pack(&ParsedSnapshot::parse(FULL).unwrap()).unwrap()
}

#[test]
fn foreign_and_damaged_bytes_are_refused() {
    let bytes = small_packed();
    assert_eq!(bytes[..4], MAGIC);
    let err = |b: &[u8]| ParsedSnapshot::from_packed(b).unwrap_err();
    assert_eq!(err(b""), PackedError::NotPacked);
    assert_eq!(err(FULL.as_bytes()), PackedError::NotPacked);
    let mut other = bytes.clone();
    other[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(
        err(&other),
        PackedError::Version {
            found: FORMAT_VERSION + 1
        }
    );
    assert!(matches!(err(&bytes[..5]), PackedError::Truncated { at: 4 }));
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        err(&longer),
        PackedError::Corrupt {
            at: bytes.len(),
            what: "bytes after the snapshot"
        }
    );
    assert_eq!(
        err(&longer).to_string(),
        format!(
            "packed snapshot is corrupt at byte {}: bytes after the snapshot",
            bytes.len()
        )
    );
    // Every shorter prefix fails.
    for n in 0..bytes.len() {
        assert!(
            ParsedSnapshot::from_packed(&bytes[..n]).is_err(),
            "{n} bytes"
        );
    }
}

/// A declared checksum that matches is checked when packing, and the
/// packed bytes carry a digest that any change breaks; one that does not
/// match is packed without a digest and reported at load.
#[test]
fn a_matching_checksum_is_checked_once_and_guarded_by_a_digest() {
    let mut sealed = parse_json(FULL).unwrap();
    seal(&mut sealed);
    let text = serde_json::to_string(&sealed).unwrap();
    let json = ParsedSnapshot::parse(&text).unwrap();
    let bytes = pack(&json).unwrap();
    assert_eq!(bytes[6], 1, "a digest follows the header");
    let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
    assert_eq!(packed.checksum(), sealed.checksum.as_deref());
    let (_, problems) = Engine::from_parsed_lenient(&packed);
    assert_eq!(problems, Engine::from_parsed_lenient(&json).1);
    assert!(problems.iter().all(|p| p.path != "checksum"));
    assert_eq!(bytes[7], 0, "no document");
    for i in 7..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x20;
        assert_eq!(
            ParsedSnapshot::from_packed(&damaged).unwrap_err(),
            PackedError::Damaged,
            "byte {i}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        ParsedSnapshot::from_packed(&longer).unwrap_err(),
        PackedError::Damaged
    );

    assert_eq!(small_packed()[6], 0, "FULL's checksum does not match");
}

/// `Engine::from_packed_lenient` never hashes: a verified checksum passes,
/// one packed without a digest is a mismatch, worded without the
/// content's hash; every other problem is the same as
/// `from_parsed_lenient`'s.
#[test]
fn from_packed_lenient_trusts_the_packer() {
    let mut sealed = parse_json(FULL).unwrap();
    seal(&mut sealed);
    let text = serde_json::to_string(&sealed).unwrap();
    let bytes = pack(&ParsedSnapshot::parse(&text).unwrap()).unwrap();
    let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
    assert_eq!(
        Engine::from_packed_lenient(&packed).1,
        Engine::from_parsed_lenient(&packed).1
    );

    let bytes = small_packed();
    let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
    let strings = |problems: Vec<bunting_core::Problem>| -> Vec<String> {
        problems.iter().map(ToString::to_string).collect()
    };
    let trusted = strings(Engine::from_packed_lenient(&packed).1);
    let hashed = strings(Engine::from_parsed_lenient(&packed).1);
    assert_eq!(trusted.len(), hashed.len());
    for (t, h) in trusted.iter().zip(&hashed) {
        if h.starts_with("checksum: checksum mismatch") {
            assert_eq!(
                t,
                "checksum: checksum mismatch: document says sha256:00, which did not match its \
                 content when it was packed"
            );
            assert!(h.contains("content hashes to sha256:"), "{h}");
        } else {
            assert_eq!(t, h);
        }
    }
}

/// The document packed along comes back byte for byte, borrowed from the
/// bytes, and changes nothing else: the same snapshot reads from them, and
/// packing without a document gives `None`.
#[test]
fn the_document_comes_back_verbatim() {
    for (name, doc, _) in documents() {
        let json = ParsedSnapshot::parse(&doc).unwrap();
        let bare = pack(&json).unwrap();
        assert_eq!(document(&bare), Ok(None), "{name}");
        let bytes = pack_with_document(&json, &doc).unwrap();
        let text = document(&bytes).unwrap().unwrap();
        assert_eq!(text, doc, "{name}");
        let range = bytes.as_ptr_range();
        assert!(range.contains(&text.as_ptr()), "{name}: borrowed");
        assert_eq!(
            bytes.len(),
            bare.len() + doc.len() + header_growth(doc.len())
        );
        let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
        assert_eq!(described(&packed), described(&json), "{name}");
        assert_eq!(pack(&packed).unwrap(), bare, "{name}");
        assert_eq!(
            Engine::from_parsed_lenient(&packed).1,
            Engine::from_parsed_lenient(&json).1,
            "{name}"
        );
    }
    // An empty document is a document.
    let json = ParsedSnapshot::parse(FULL).unwrap();
    assert_eq!(
        document(&pack_with_document(&json, "").unwrap()),
        Ok(Some(""))
    );
}

/// A value stripped of its document is the value packed without one, for
/// every document (sealed or not, so with and without a digest) and both
/// format versions: it reads as the same snapshot, with the same problems,
/// and holds the same tables. Damaging the stripped tables still fails the
/// digest of a sealed one.
#[test]
fn a_value_without_its_document_is_the_bare_pack() {
    let mut sealed = parse_json(FULL).unwrap();
    seal(&mut sealed);
    let sealed = serde_json::to_string(&sealed).unwrap();
    let mut docs: Vec<(String, String)> = documents()
        .into_iter()
        .map(|(name, doc, _)| (name, doc))
        .collect();
    docs.push(("sealed".into(), sealed));
    docs.push(("bench".into(), bench_like()));
    for (name, doc) in docs {
        let json = ParsedSnapshot::parse(&doc).unwrap();
        for version in [FORMAT_VERSION, FORMAT_VERSION_1] {
            let bare = pack_as(&json, None, version).unwrap();
            let full = pack_as(&json, Some(&doc), version).unwrap();
            let stripped = without_document(&full).unwrap();
            assert_eq!(&*stripped, &bare[..], "{name} v{version}");
            assert_eq!(document(&stripped), Ok(None), "{name} v{version}");
            assert_eq!(tables(&full), tables(&bare), "{name} v{version}");
            assert!(
                matches!(without_document(&bare).unwrap(), std::borrow::Cow::Borrowed(b) if b == &bare[..]),
                "{name} v{version}: nothing to strip"
            );
            let packed = ParsedSnapshot::from_packed(&stripped).unwrap();
            assert_eq!(described(&packed), described(&json), "{name} v{version}");
            assert_eq!(
                Engine::from_parsed_lenient(&packed).1,
                Engine::from_parsed_lenient(&json).1,
                "{name} v{version}"
            );
        }
    }
    let mut sealed = parse_json(FULL).unwrap();
    seal(&mut sealed);
    let text = serde_json::to_string(&sealed).unwrap();
    let full = pack_with_document(&ParsedSnapshot::parse(&text).unwrap(), &text).unwrap();
    let mut stripped = without_document(&full).unwrap().into_owned();
    assert_eq!(stripped[6], 1, "the digest is kept");
    let last = stripped.len() - 1;
    stripped[last] ^= 0x01;
    assert_eq!(
        ParsedSnapshot::from_packed(&stripped).err(),
        Some(PackedError::Damaged)
    );
    assert_eq!(without_document(b"{}").err(), Some(PackedError::NotPacked));
    assert_eq!(tables(b"BSN").err(), Some(PackedError::NotPacked));
}

/// How many bytes the header's document length takes beyond the one byte
/// of "no document".
fn header_growth(len: usize) -> usize {
    let mut n = len as u64 + 1;
    let mut bytes = 1;
    while n >= 0x80 {
        n >>= 7;
        bytes += 1;
    }
    bytes - 1
}

/// The digest does not cover the document, so damaging the document does
/// not fail the read (the document's integrity is its own checksum, which
/// its readers verify); damaging the tables still does, and so does a
/// wrong document length or a cut.
#[test]
fn a_damaged_document_does_not_break_the_read() {
    let mut sealed = parse_json(FULL).unwrap();
    seal(&mut sealed);
    let text = serde_json::to_string(&sealed).unwrap();
    let json = ParsedSnapshot::parse(&text).unwrap();
    let bytes = pack_with_document(&json, &text).unwrap();
    assert_eq!(bytes[6], 1, "sealed: a digest follows");
    let start = bytes.len() - text.len();
    assert_eq!(&bytes[start..], text.as_bytes());
    let expected = described(&json);
    let problems = Engine::from_parsed_lenient(&json).1;
    assert!(problems.iter().all(|p| p.path != "checksum"));
    for i in start..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x20;
        let packed = ParsedSnapshot::from_packed(&damaged).unwrap();
        assert_eq!(described(&packed), expected, "byte {i}");
        assert_eq!(
            Engine::from_parsed_lenient(&packed).1,
            problems,
            "byte {i}: the digest held"
        );
        match document(&damaged) {
            Ok(Some(d)) => assert_ne!(d, text, "byte {i}"),
            Ok(None) => panic!("byte {i}: the document is gone"),
            Err(e) => assert!(
                matches!(e, PackedError::Corrupt { what, .. } if what.contains("UTF-8")),
                "byte {i}: {e}"
            ),
        }
    }
    // Bytes that are not UTF-8: the snapshot reads, the document does not.
    let mut bad = bytes.clone();
    bad[start + 3] = 0xff;
    assert!(ParsedSnapshot::from_packed(&bad).is_ok());
    assert_eq!(
        document(&bad),
        Err(PackedError::Corrupt {
            at: start + 3,
            what: "a document that is not UTF-8"
        })
    );
    // Everything before the document is still guarded: the tables by the
    // digest, the header's length by where it puts the tables' end.
    for i in 7..start {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x20;
        assert!(ParsedSnapshot::from_packed(&damaged).is_err(), "byte {i}");
    }
    for n in 0..bytes.len() {
        assert!(
            ParsedSnapshot::from_packed(&bytes[..n]).is_err(),
            "{n} bytes"
        );
    }
    let mut longer = bytes.clone();
    longer.push(b' ');
    assert_eq!(
        ParsedSnapshot::from_packed(&longer).unwrap_err(),
        PackedError::Damaged
    );
}

/// A variant value nested deeper than any document holds is not packed;
/// one as deep as a document can hold is.
#[test]
fn values_nest_as_deep_as_in_a_document() {
    let nest = |depth: usize| {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!([v]);
        }
        json!({"v": v})
    };
    let doc = |value: Value| {
        json!({"schemaVersion": 1, "environment": "e", "version": 1,
            "generatedAt": "2026-11-25T00:00:00Z",
            "flags": [{"key": "deep", "type": "object", "variants": {"a": value},
                       "offVariant": "a", "fallthrough": {"variant": "a"}}]})
    };
    let deep: bunting_core::Snapshot = serde_json::from_value(doc(nest(MAX_DEPTH))).unwrap();
    assert_eq!(
        pack(&ParsedSnapshot::of(&deep)),
        Err(PackError::TooDeep {
            flag: "deep".into()
        })
    );
    let text = doc(nest(120)).to_string();
    let parsed = ParsedSnapshot::parse(&text).unwrap();
    let bytes = pack(&parsed).unwrap();
    assert_eq!(
        described(&ParsedSnapshot::from_packed(&bytes).unwrap()),
        described(&parsed)
    );
}

/// Reads `bytes`; if they read, loads and evaluates them too: none of it
/// may panic.
fn read_and_use(bytes: &[u8]) {
    if let Ok(parsed) = ParsedSnapshot::from_packed(bytes) {
        let _ = described(&parsed);
        let _ = pack(&parsed);
        let (engine, _) = Engine::from_parsed_lenient(&parsed);
        let _ = answers(&engine, &[(json!({"targetingKey": "u", "x": 1}), 0)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random bytes changed, inserted or removed anywhere.
    #[test]
    fn damaged_packed_snapshots_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
        with_document in any::<bool>(),
    ) {
        let mut bytes = if with_document {
            pack_with_document(&ParsedSnapshot::parse(FULL).unwrap(), FULL).unwrap()
        } else {
            small_packed()
        };
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] ^= byte | 1,
                1 => bytes[i] = byte,
                2 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        read_and_use(&bytes);
        let _ = document(&bytes);
    }

    /// Any bytes after a valid header without a digest.
    #[test]
    fn random_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&tail);
        read_and_use(&bytes);
    }
}

/// A condition text of the rule language, from a small grammar: every
/// operator, function and literal kind (versions with pre-releases and
/// builds, times, regular expressions, lists), nesting, segment
/// references (valid, invalid, unknown) and, now and then, text that does
/// not parse or does not type-check.
fn condition() -> impl Strategy<Value = String> {
    let path = prop::sample::select(vec![
        "plan",
        "country",
        "email",
        "app.version",
        "user.tier",
        "n",
        "tags",
        "at",
        "missing",
        "targetingKey",
        "flag",
        "user.age",
    ]);
    let literal = prop::sample::select(vec![
        r#""pro""#,
        r#""PRO""#,
        r#""US""#,
        "3",
        "-2.5",
        "1e3",
        "true",
        "false",
        "null",
        r#""2.1.0""#,
        r#""v2""#,
        r#""1.0.0-beta.1+b7""#,
        r#""2026-06-01T00:00:00Z""#,
        r#"["pro", "team"]"#,
        r#"["US", "CA", 3]"#,
        "[]",
        r#"["1.2", "2.0.0-rc.1"]"#,
        r#""@bunting\\.dev$""#,
        r#""[a-""#,
        r#""x\"y""#,
    ]);
    let op = prop::sample::select(vec![
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "in",
        "not in",
        "contains",
        "starts_with",
        "ends_with",
        "matches",
    ]);
    let operand = (path.clone(), 0..5u8).prop_map(|(p, f)| match f {
        0 => format!("semver({p})"),
        1 => format!("datetime({p})"),
        2 => format!("lower({p})"),
        3 => "now".to_string(),
        _ => p.to_string(),
    });
    let leaf = prop_oneof![
        4 => (operand.clone(), op.clone(), literal.clone()).prop_map(|(a, o, l)| format!("{a} {o} {l}")),
        1 => (literal, op, operand).prop_map(|(l, o, a)| format!("{l} {o} {a}")),
        1 => path.clone().prop_map(|p| format!("exists({p})")),
        1 => path.prop_map(str::to_string),
        1 => prop::sample::select(vec!["valid", "broken", "nowhere", "twice"])
            .prop_map(|s| format!("segment(\"{s}\")")),
        1 => prop::sample::select(vec!["true", "false", "plan ==", "(", "semver(\"x\") > \"1\"", "a..b", "lower(\"A\") == \"a\""])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or {b}")),
            inner.clone().prop_map(|a| format!("!({a})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// The contexts the generated conditions are evaluated against.
fn condition_contexts() -> Vec<(Value, i64)> {
    let at = parse_rfc3339_ms("2026-06-01T00:00:00Z").unwrap();
    [
        json!({}),
        json!({"targetingKey": "u1", "plan": "pro", "country": "US", "email": "A@Bunting.dev",
               "app": {"version": "2.1.0"}, "user": {"tier": "gold", "age": 30}, "n": 3,
               "tags": ["pro", "beta"], "at": "2026-06-01T00:00:00Z", "flag": true}),
        json!({"targetingKey": "u2", "plan": "PRO", "country": "CA", "email": "x@y.z",
               "app": {"version": "v2"}, "user": {"tier": null}, "n": -2.5,
               "tags": [], "at": at, "flag": false}),
        json!({"targetingKey": "u3", "plan": ["pro"], "app": {"version": "1.0.0-beta.1+b7"},
               "n": "3", "at": "yesterday", "department": "eng"}),
    ]
    .into_iter()
    .flat_map(|c| [(c.clone(), at - 1), (c.clone(), at), (c, at + 86_400_000)])
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Conditions compiled by the packer (version 2) give the problems and
    /// answers of the same texts parsed at load (the JSON document, and
    /// version 1), whatever the condition.
    #[test]
    fn precompiled_conditions_answer_as_their_texts(rules in proptest::collection::vec(condition(), 1..4)) {
        let doc = json!({
            "schemaVersion": 1, "environment": "t", "version": 1,
            "generatedAt": "2026-11-25T00:00:00Z",
            "segments": [
                {"key": "valid", "included": ["u3"], "condition": "department == \"eng\""},
                {"key": "broken", "condition": "plan =="},
                {"key": "twice"}, {"key": "twice", "condition": "segment(\"valid\")"}
            ],
            "flags": [{
                "key": "f", "type": "string", "variants": {"a": "A", "b": "B"}, "offVariant": "a",
                "rules": rules.iter().map(|c| json!({"condition": c, "serve": {"variant": "b"}})).collect::<Vec<_>>(),
                "fallthrough": {"variant": "a"}
            }, {
                "key": "g", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                "rules": [{"condition": rules[0], "serve": {"variant": "on"}}],
                "fallthrough": {"variant": "off"}
            }]
        })
        .to_string();
        let json = ParsedSnapshot::parse(&doc).unwrap();
        let (from_json, json_problems) = Engine::from_parsed_lenient(&json);
        let contexts = condition_contexts();
        let want = answers(&from_json, &contexts);
        for version in [FORMAT_VERSION, FORMAT_VERSION_1] {
            let bytes = pack_as(&json, None, version).unwrap();
            let packed = ParsedSnapshot::from_packed(&bytes).unwrap();
            let (engine, problems) = Engine::from_parsed_lenient(&packed);
            prop_assert_eq!(&problems, &json_problems, "version {}", version);
            prop_assert_eq!(answers(&engine, &contexts), want.clone(), "version {}", version);
        }
    }
}
