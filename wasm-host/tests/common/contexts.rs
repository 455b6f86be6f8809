//! Generators of random evaluation contexts and times for differential
//! tests over `tests/data/prop_snapshot.json`: shared by the wasm-host
//! proptest and the server SDK's wasmtime-vs-native test.

use bunting_core::FlagType;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// 2025-12-01T00:00:00Z .. 2026-04-01T00:00:00Z: before, across and after
/// every schedule step and time window of the snapshot.
pub(crate) const NOW_RANGE: std::ops::Range<i64> = 1_764_547_200_000..1_775_001_600_000;

/// Strings that exercise the rule operators: plausible values, unicode, empty.
pub(crate) fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", "alice", "bob", "mallory", "Ünïcødé", "user-1", "user-12", "user-2", "zed",
            "ALICE@EXAMPLE.COM", "jane.doe@acme.io", "x@bunting.dev", "Bob@Bunting.Dev",
            "US", "CA", "DE", "FR", "JP", "free", "pro", "team", "enterprise", "vip", "admin",
            "early-access", "mobile", "desktop", "1.0.0", "2.1", "v3.0.1", "3.0.0-beta",
        ]).prop_map(String::from),
        2 => "[a-z]{0,8}(\\.[a-z]{1,6})?@?[a-z.]{0,12}",
        2 => "\\PC{0,16}",
        1 => "[\u{0}-\u{7f}]{0,4}",
    ]
    .boxed()
}

/// Any JSON scalar, occasionally nested: the "wrongly typed" attribute values.
pub(crate) fn junk() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// An attribute: usually a value of the expected shape, sometimes missing
/// (`None`) or of another type.
pub(crate) fn attr(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        6 => good.prop_map(Some),
        2 => Just(None),
        1 => junk().prop_map(Some),
    ]
    .boxed()
}

pub(crate) fn country() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["US", "CA", "MX", "DE", "FR", "IT", "ES", "NL", "JP", "BR"])
            .prop_map(Value::from),
        1 => "[A-Za-z]{0,3}".prop_map(Value::from),
    ]
    .boxed()
}

pub(crate) fn version() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "1.0.0", "1.9.9", "2", "2.0", "2.1", "2.1.0", "2.1.0-beta.1", "2.10.3", "v3.0.1",
            "3.0.0", "3.0.0-rc.1", "3.1", "10.0.0+build.5", "banana", "", "1.2.3.4",
        ]).prop_map(Value::from),
        1 => (0u32..12, 0u32..12, 0u32..12).prop_map(|(a, b, c)| Value::from(format!("{a}.{b}.{c}"))),
    ].boxed()
}

pub(crate) fn age() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (0i64..110).prop_map(Value::from),
        1 => (0.0f64..110.0).prop_map(Value::from),
        1 => prop::sample::select(vec![json!("young"), json!("old"), json!("42"), Value::Null, json!(true), json!(17.999), json!(65)]),
    ].boxed()
}

pub(crate) fn email() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => ("[a-z]{1,6}", prop::option::of("[a-z]{1,6}"), prop::sample::select(vec![
            "example.com", "EXAMPLE.COM", "bunting.dev", "Bunting.Dev", "acme.io", "mail.example.com",
        ]))
            .prop_map(|(a, b, d)| match b {
                Some(b) => Value::from(format!("{a}.{b}@{d}")),
                None => Value::from(format!("{a}@{d}")),
            }),
        1 => text().prop_map(Value::from),
    ].boxed()
}

pub(crate) fn plan() -> BoxedStrategy<Value> {
    prop::sample::select(vec!["free", "pro", "team", "enterprise", "Free", ""])
        .prop_map(Value::from)
        .boxed()
}

pub(crate) fn tags() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::collection::vec(
            prop::sample::select(vec!["vip", "admin", "early-access", "beta", "x"]).prop_map(Value::from),
            0..4,
        ).prop_map(Value::Array),
        1 => Just(json!("vip")),
        1 => prop::collection::vec(junk(), 0..3).prop_map(Value::Array),
    ].boxed()
}

pub(crate) fn signup() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => (1_700_000_000_000i64..1_780_000_000_000).prop_map(Value::from),
        2 => prop::sample::select(vec![
            "2024-12-31T23:59:59Z", "2025-05-31T23:59:59.999Z", "2025-06-01T00:00:00Z",
            "2025-06-01T01:00:00+02:00", "2026-01-01T00:00:00Z", "not a date", "2025-02-30T00:00:00Z",
        ]).prop_map(Value::from),
    ].boxed()
}

pub(crate) fn targeting_key() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        8 => text().prop_map(|s| Some(Value::String(s))),
        1 => "user-[0-9]{1,5}".prop_map(|s| Some(Value::String(s))),
        1 => Just(None),
        1 => junk().prop_map(Some),
    ]
    .boxed()
}

pub(crate) fn org() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop_oneof![
            (0u32..500).prop_map(Value::from),
            "org-[0-9]{1,3}".prop_map(Value::from),
            (0.0f64..10.0).prop_map(Value::from),
        ].prop_map(|id| json!({"id": id})),
        1 => junk(),
    ]
    .boxed()
}

prop_compose! {
    pub(crate) fn context()(
        key in targeting_key(),
        country in attr(country()),
        version in attr(version()),
        app_as_string in prop::bool::weighted(0.05),
        age in attr(age()),
        email in attr(email()),
        plan in attr(plan()),
        tags in attr(tags()),
        signup in attr(signup()),
        org in attr(org()),
        account in attr(text().prop_map(Value::from)),
        beta in attr(any::<bool>().prop_map(Value::from)),
        device in attr(prop::sample::select(vec!["mobile", "desktop"]).prop_map(Value::from)),
        score in attr((-1.0f64..200.0).prop_map(Value::from)),
        name in attr(text().prop_map(Value::from)),
        extra in prop::collection::btree_map("[a-z]{1,4}", junk(), 0..2),
    ) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| if let Some(v) = v { m.insert(k.to_owned(), v); };
        put("targetingKey", key);
        put("country", country);
        put("app", version.map(|v| if app_as_string { v } else { json!({"version": v}) }));
        put("age", age);
        put("email", email);
        put("plan", plan);
        put("tags", tags);
        put("signupDate", signup);
        put("org", org);
        put("account", account);
        put("beta", beta);
        put("device", device);
        put("score", score);
        put("name", name);
        for (k, v) in extra {
            m.entry(k).or_insert(v);
        }
        Value::Object(m)
    }
}

pub(crate) fn expected_type() -> BoxedStrategy<Option<FlagType>> {
    prop::option::of(prop::sample::select(vec![
        FlagType::Boolean,
        FlagType::String,
        FlagType::Number,
        FlagType::Object,
    ]))
    .boxed()
}

pub(crate) fn now_ms() -> BoxedStrategy<i64> {
    prop_oneof![
        8 => NOW_RANGE,
        // Exactly on schedule steps and window edges.
        1 => prop::sample::select(vec![
            1_767_225_600_000i64, 1_767_225_599_999, 1_771_113_600_000, 1_771_155_000_000,
            1_772_323_200_000, 1_773_532_800_000, 1_773_532_799_999,
        ]),
    ]
    .boxed()
}
