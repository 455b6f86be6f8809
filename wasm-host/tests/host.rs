//! The host's own machinery: the compilation cache, call budgets, the
//! instance pool and the raw batch call.

mod common;

use std::time::Duration;

use bunting_core::FlagType;
use bunting_wasm_host::{HostError, RuntimeOptions, WasmPool, WasmRuntime};
use serde_json::{Value, json};

const SNAPSHOT: &str = include_str!("data/prop_snapshot.json");
const NOW: i64 = 1_764_547_200_000;

fn module() -> Vec<u8> {
    std::fs::read(WasmRuntime::module_path().unwrap()).unwrap()
}

#[test]
fn a_second_runtime_loads_the_compiled_module_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let options = RuntimeOptions::default().cache_dir(dir.path());
    let bytes = module();
    let first = WasmRuntime::from_bytes_with(&bytes, &options).unwrap();
    assert_eq!(first.cache_stats(), (0, 1), "a cold cache misses");
    // The cache is written by a background worker thread; wait for it.
    for _ in 0..200 {
        let second = WasmRuntime::from_bytes_with(&bytes, &options).unwrap();
        if second.cache_stats().0 == 1 {
            let mut engine = second.load_snapshot(SNAPSHOT).unwrap();
            engine
                .evaluate_all(&json!({"targetingKey": "u1"}), NOW)
                .unwrap();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the compiled module never came from the cache");
}

#[test]
fn a_call_past_its_budget_times_out_and_poisons_only_its_instance() {
    let bytes = module();
    let options = RuntimeOptions::default().call_budget(Some(Duration::ZERO));
    let runtime = WasmRuntime::from_bytes_with(&bytes, &options).unwrap();
    let mut engine = runtime.load_snapshot(SNAPSHOT).unwrap();
    let err = engine
        .evaluate_all(&json!({"targetingKey": "u1"}), NOW)
        .unwrap_err();
    assert!(
        matches!(err, HostError::Timeout { call: _, budget } if budget == Duration::ZERO),
        "{err}"
    );
    assert!(engine.is_poisoned());
    assert!(matches!(
        engine.evaluate("x", &json!({}), NOW),
        Err(HostError::Poisoned)
    ));
    // Another instance of the same runtime still loads (loads have their own budget).
    let other = runtime.load_snapshot(SNAPSHOT).unwrap();
    assert!(!other.is_poisoned());
}

#[test]
fn unbounded_runtimes_still_work() {
    let options = RuntimeOptions::default()
        .call_budget(None)
        .load_budget(None);
    let runtime = WasmRuntime::from_bytes_with(&module(), &options).unwrap();
    let mut engine = runtime.load_snapshot(SNAPSHOT).unwrap();
    assert!(!engine.evaluate_all(&json!({}), NOW).unwrap().is_empty());
}

#[test]
fn the_raw_batch_reply_is_the_typed_one_as_json() {
    let mut engine = common::runtime().load_snapshot(SNAPSHOT).unwrap();
    let ctx = json!({"targetingKey": "user-7", "country": "US", "plan": "pro"});
    let typed: Vec<_> = engine
        .evaluate_all(&ctx, NOW)
        .unwrap()
        .into_iter()
        .map(|e| e.into_owned())
        .collect();
    let mut raw = Vec::new();
    engine.evaluate_all_raw(&ctx, NOW, &mut raw).unwrap();
    let raw: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(raw, json!({"all": serde_json::to_value(&typed).unwrap()}));
    // Requests of growing size reuse and grow the request buffer.
    let big = json!({"targetingKey": "x".repeat(10_000)});
    assert_eq!(engine.evaluate_all(&big, NOW).unwrap().len(), typed.len());
    assert_eq!(engine.evaluate_all(&ctx, NOW).unwrap(), typed);
}

#[test]
fn many_threads_evaluate_one_snapshot_through_the_pool() {
    let pool = WasmPool::new(common::runtime().clone(), SNAPSHOT.to_owned()).unwrap();
    let native = bunting_core::Engine::from_json(SNAPSHOT).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let pool = &pool;
            let native = &native;
            s.spawn(move || {
                for i in 0..50 {
                    let ctx = json!({"targetingKey": format!("user-{t}-{i}"), "country": "CA"});
                    let mut engine = pool.get().unwrap();
                    let got = engine.evaluate_all(&ctx, NOW).unwrap();
                    let want: Vec<_> = native
                        .evaluate_all(&ctx, NOW)
                        .into_iter()
                        .map(|e| e.into_owned())
                        .collect();
                    assert_eq!(got, want);
                }
            });
        }
    });
    assert!(pool.idle() >= 1);
}

#[test]
fn the_module_reuses_only_the_context_it_holds() {
    // A compact call sends its context only when it differs from the last
    // one the instance answered for; any mix of repeated and new contexts,
    // one flag and all flags, answers as natively.
    let native = bunting_core::Engine::from_json(SNAPSHOT).unwrap();
    let mut engine = common::runtime().load_snapshot(SNAPSHOT).unwrap();
    let a = json!({"targetingKey": "user-7", "country": "US", "plan": "pro"});
    let b = json!({"targetingKey": "user-8", "country": "CA"});
    let keys: Vec<String> = native.flag_keys().map(str::to_owned).collect();
    for ctx in [&a, &a, &b, &a, &b, &b] {
        assert_eq!(
            engine.evaluate_all(ctx, NOW).unwrap(),
            native.evaluate_all(ctx, NOW)
        );
        for key in &keys {
            assert_eq!(
                engine.evaluate(key, ctx, NOW).unwrap(),
                native.evaluate(key, ctx, NOW)
            );
        }
    }
    // A rejected call (an unknown handle) leaves the host unsure of what the
    // module holds, so the next call sends its context again.
    let handle = engine.handle();
    let catalog = engine.instance().catalog(handle).unwrap();
    let err = engine
        .instance()
        .evaluate_compact(99, &catalog, None, None, &b, NOW)
        .unwrap_err();
    assert!(matches!(err, HostError::BadRequest(_)), "{err:?}");
    assert_eq!(
        engine.evaluate_all(&b, NOW).unwrap(),
        native.evaluate_all(&b, NOW)
    );
    // A `Context` travels as JSON, a `Value` in the binary form: mixed,
    // each answers as natively.
    let own = bunting_core::Context::new()
        .with_targeting_key("user-8")
        .with("country", "CA");
    for _ in 0..2 {
        assert_eq!(
            engine.evaluate_all_serialized(&own, NOW).unwrap(),
            native.evaluate_all(&own, NOW)
        );
        assert_eq!(
            engine.evaluate_all(&a, NOW).unwrap(),
            native.evaluate_all(&a, NOW)
        );
    }
    // A context the module cannot use is an error result, as natively.
    assert_eq!(
        engine.evaluate_all(&json!([1]), NOW).unwrap(),
        native.evaluate_all(&json!([1]), NOW)
    );
}

#[test]
fn prepared_contexts_and_flag_handles_answer_as_keys_and_values() {
    // A prepared context is sent only when the instance does not hold it;
    // mixed with `Value` and `Context` calls, and after a rejected call,
    // every answer is the native one.
    use bunting_wasm_host::PreparedContext;
    let native = bunting_core::Engine::from_json(SNAPSHOT).unwrap();
    let mut engine = common::runtime().load_snapshot(SNAPSHOT).unwrap();
    let a = json!({"targetingKey": "user-7", "country": "US", "plan": "pro"});
    let b = json!({"targetingKey": "user-8", "country": "CA"});
    let (pa, pb) = (PreparedContext::new(&a), PreparedContext::new(&b));
    let own = bunting_core::Context::new()
        .with_targeting_key("user-8")
        .with("country", "CA");
    let po = PreparedContext::serialized(&own).unwrap();
    let keys: Vec<String> = native.flag_keys().map(str::to_owned).collect();
    let steps: [(&PreparedContext, &Value); 7] = [
        (&pa, &a),
        (&pa, &a),
        (&pb, &b),
        (&po, &b),
        (&pa.clone(), &a),
        (&pb, &b),
        (&pb, &b),
    ];
    for (i, (prepared, ctx)) in steps.into_iter().enumerate() {
        assert_eq!(
            engine.evaluate_all_prepared(prepared, NOW).unwrap(),
            native.evaluate_all(ctx, NOW)
        );
        for key in &keys {
            let flag = engine.flag(key).unwrap().expect("in the snapshot");
            assert_eq!(
                engine
                    .evaluate_prepared(flag, Some(FlagType::String), prepared, NOW)
                    .unwrap(),
                native.evaluate_typed(key, Some(FlagType::String), ctx, NOW)
            );
            // A `Value` call between two prepared ones.
            if i % 2 == 1 {
                assert_eq!(
                    engine.evaluate(key, &b, NOW).unwrap(),
                    native.evaluate(key, &b, NOW)
                );
            }
        }
    }
    assert_eq!(engine.flag("no-such-flag").unwrap(), None);
    // A rejected call: the prepared context is sent again after it.
    let handle = engine.handle();
    let catalog = engine.instance().catalog(handle).unwrap();
    let err = engine
        .instance()
        .evaluate_compact_prepared(99, &catalog, None, None, &pb, NOW)
        .unwrap_err();
    assert!(matches!(err, HostError::BadRequest(_)), "{err:?}");
    assert_eq!(
        engine.evaluate_all_prepared(&pb, NOW).unwrap(),
        native.evaluate_all(&b, NOW)
    );
    // A handle belongs to its engine.
    let mut other = common::runtime().load_snapshot(SNAPSHOT).unwrap();
    let flag = engine.flag(&keys[0]).unwrap().unwrap();
    let err = other.evaluate_prepared(flag, None, &pa, NOW).unwrap_err();
    assert!(matches!(err, HostError::BadRequest(_)), "{err:?}");
}
