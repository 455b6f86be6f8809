//! Differential test: random contexts evaluated natively (`bunting_core`) and
//! through the WASM module in wasmtime must give identical JSON.

mod common;

use common::contexts::*;

use std::cell::RefCell;

use bunting_core::Engine;
use bunting_core::protocol::EvalRequest;
use bunting_wasm_host::{PreparedContext, WasmEngine};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const SNAPSHOT: &str = include_str!("data/prop_snapshot.json");

thread_local! {
    static ENGINES: RefCell<(Engine, WasmEngine)> = RefCell::new({
        let native = Engine::from_json(SNAPSHOT).expect("the snapshot loads natively");
        let hosted = common::runtime()
            .load_snapshot(SNAPSHOT)
            .expect("the snapshot loads in wasmtime");
        (native, hosted)
    });
}

fn flag_keys() -> Vec<String> {
    ENGINES.with(|e| e.borrow().0.flag_keys().map(String::from).collect())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // `PROPTEST_CASES=100000 cargo test …` for a deeper run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn wasmtime_matches_native(
        ctx in prop_oneof![20 => context(), 1 => junk()],
        now in now_ms(),
        pick in any::<prop::sample::Index>(),
        expected in expected_type(),
    ) {
        let mut keys = flag_keys();
        keys.push("no-such-flag".into());
        let flag = pick.get(&keys);
        ENGINES.with(|engines| -> Result<(), TestCaseError> {
            let (native, hosted) = &mut *engines.borrow_mut();

            let want = serde_json::to_value(native.evaluate_all(&ctx, now)).unwrap();
            let req = EvalRequest { flag: None, context: ctx.clone(), now_ms: now, expected_type: None };
            let got = hosted.answer(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                &got, &want, "evaluate_all differs for {} at {}{}", ctx, now,
                common::stale_hint().map_or(String::new(), |h| format!(" ({h})"))
            );

            // The typed API agrees with the raw JSON, with the context as
            // a value and prepared.
            let typed = hosted.evaluate_all(&ctx, now).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&serde_json::to_value(&typed).unwrap(), &want);
            let prepared = PreparedContext::new(&ctx);
            let typed = hosted.evaluate_all_prepared(&prepared, now)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&serde_json::to_value(&typed).unwrap(), &want);
            // Decoded on access: the same results, in order and by key.
            let native_all = native.evaluate_all(&ctx, now);
            let view = hosted.evaluate_all_prepared_view(&prepared, now)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&serde_json::to_value(view.to_vec()).unwrap(), &want);
            for (i, e) in native_all.iter().enumerate() {
                common::assert_same(view.find(&e.key), Some(e));
                common::assert_same(view.get(i), Some(e));
            }
            prop_assert!(view.find("no-such-flag").is_none());
            drop(view);
            let view = hosted.evaluate_all_view(&ctx, now)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(view.len(), native_all.len());
            let read: Vec<_> = view.iter().map(|e| e.to_evaluation()).collect();
            prop_assert_eq!(serde_json::to_value(read).unwrap(), want);

            // One flag (or an unknown one), with an expected type.
            let want = serde_json::to_value(native.evaluate_typed(flag, expected, &ctx, now)).unwrap();
            let got = hosted.evaluate_typed(flag, expected, &ctx, now)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&serde_json::to_value(&got).unwrap(), &want, "{} differs for {} at {}", flag, ctx, now);
            // By handle, with the prepared context.
            if let Some(handle) = hosted.flag(flag).map_err(|e| TestCaseError::fail(e.to_string()))? {
                let got = hosted.evaluate_prepared(handle, expected, &prepared, now)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(serde_json::to_value(&got).unwrap(), want, "{} by handle", flag);
            }
            Ok(())
        })?;
    }
}

/// The generators reach every reason, so the differential test is not
/// comparing a sea of identical errors.
#[test]
fn generated_contexts_cover_every_reason() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let strategy = (context(), now_ms());
    ENGINES.with(|engines| {
        let (native, _) = &*engines.borrow();
        for _ in 0..500 {
            let (ctx, now) = strategy.new_tree(&mut runner).unwrap().current();
            for e in native.evaluate_all(&ctx, now) {
                let key = match e.error_code {
                    Some(c) => c.as_str().to_string(),
                    None => e.reason.as_str().to_string(),
                };
                *reasons.entry(key).or_default() += 1;
            }
        }
    });
    for want in [
        "STATIC",
        "TARGETING_MATCH",
        "SPLIT",
        "DISABLED",
        "DEFAULT",
        "TARGETING_KEY_MISSING",
        "INVALID_CONTEXT",
    ] {
        assert!(
            reasons.contains_key(want),
            "{want} never produced: {reasons:?}"
        );
    }
}
