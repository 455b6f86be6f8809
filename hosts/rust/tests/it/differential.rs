//! wasmtime vs native through the client, on 1 200 seeded random contexts
//! (the generators of `wasm-host/tests/common/contexts.rs`) over the
//! proptest snapshot and the demo snapshot: every flag at once, and one
//! flag with a random expected type.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../../wasm-host/tests/common/contexts.rs"]
mod contexts;

use bunting_server_sdk::{Client, EngineKind};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use crate::common::pinned;

const SNAPSHOTS: &[(&str, &str)] = &[
    (
        "prop_snapshot.json",
        include_str!("../../../../wasm-host/tests/data/prop_snapshot.json"),
    ),
    (
        "demo-snapshot.json",
        include_str!("../../../../examples/demo-snapshot.json"),
    ),
];

const CONTEXTS: usize = 1_200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmtime_and_native_agree_on_random_contexts() {
    for (name, snapshot) in SNAPSHOTS {
        let (now, clock) = pinned(0);
        let build = |kind: EngineKind| {
            Client::builder("k")
                .fixed(*snapshot, false)
                .engine(kind)
                .clock(clock.clone())
                .build()
        };
        let wasm = build(EngineKind::default()).await.unwrap();
        let native = build(EngineKind::Native).await.unwrap();
        let mut keys = native.flag_keys();
        keys.push("no-such-flag".into());
        // Seeded: the same contexts on every run.
        let mut runner = TestRunner::new_with_rng(
            Config::default(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
        );
        let strategy = (
            prop_oneof![20 => contexts::context(), 1 => contexts::junk()],
            contexts::now_ms(),
            any::<prop::sample::Index>(),
            contexts::expected_type(),
        );
        for i in 0..CONTEXTS {
            let (ctx, at, pick, expected) = strategy.new_tree(&mut runner).unwrap().current();
            now.store(at, std::sync::atomic::Ordering::SeqCst);
            let all = |c: &Client| -> Value {
                serde_json::to_value(c.evaluate_all(&ctx).unwrap()).unwrap()
            };
            assert_eq!(
                all(&wasm),
                all(&native),
                "{name} #{i}: evaluate all differs for {ctx} at {at}"
            );
            let flag = pick.get(&keys);
            let one = |c: &Client| -> Value {
                serde_json::to_value(c.evaluate(flag, expected, &ctx).unwrap()).unwrap()
            };
            assert_eq!(
                one(&wasm),
                one(&native),
                "{name} #{i}: {flag} differs for {ctx} at {at}"
            );
        }
        wasm.close().await;
        native.close().await;
    }
}
