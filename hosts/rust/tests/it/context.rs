//! A `bunting_core::Context` through the client, on both engines: every
//! flag of the demo snapshot evaluates as the context's JSON form does, and
//! the exposures and events it yields are the JSON form's.

use std::time::Duration;

use bunting_core::FlagType;
use bunting_server_sdk::{Client, Context, EngineKind, SdkContext};
use serde_json::{Value, json};

use crate::common::{Ingest, engines, pinned};

const DEMO: &str = include_str!("../../../../examples/demo-snapshot.json");

/// 2026-12-01: inside the demo's schedules and experiments.
const NOW: i64 = 1_764_547_200_000;

/// Contexts covering string, number and JSON-valued keys, nested objects
/// (read by rules and by exposures), lists, nulls and no key at all.
fn contexts<'a>(tags: &'a Value, key: &'a Value) -> Vec<Context<'a>> {
    vec![
        Context::new()
            .with_targeting_key("user-chen")
            .with("country", "CA")
            .with("plan", "enterprise")
            .with_object("device", |d| {
                d.set("type", "mobile");
            })
            .with_object("geo", |g| {
                g.set("country", "CA").set_object("city", |c| {
                    c.set("name", "Montréal");
                });
            }),
        Context::new()
            .with("targetingKey", 42)
            .with("country", "US")
            .with("email", "a@bunting.dev")
            .with("tags", tags)
            .with("device", key),
        Context::new()
            .with("targetingKey", 1.5)
            .with("plan", None::<&str>)
            .with("beta", true),
        Context::new()
            .with("targetingKey", key)
            .with("country", "US"),
        Context::new().with("plan", "pro"),
        Context::new().with("targetingKey", true),
    ]
}

/// A client on `engine` over the demo snapshot at [`NOW`], reporting to
/// `ingest_url`.
async fn client(engine: EngineKind, ingest_url: String) -> Client {
    let (_, clock) = pinned(NOW);
    Client::builder("server-key")
        .fixed(DEMO, false)
        .engine(engine)
        .clock(clock)
        .ingest_url(ingest_url)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .await
        .expect("client starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_evaluates_as_its_json_form() {
    let (tags, key) = (json!(["vip", "beta"]), json!("user-json"));
    for (name, engine) in engines() {
        let (_ingest, url) = Ingest::start(202).await;
        let client = client(engine, url).await;
        let flags = client.flag_keys();
        assert!(flags.len() > 3, "{name}: the demo snapshot has flags");
        for ctx in contexts(&tags, &key) {
            let json = ctx.to_json();
            assert_eq!(ctx.targeting_key(), json.targeting_key(), "{name}: {json}");
            assert_eq!(
                client.evaluate_all(&ctx).unwrap(),
                client.evaluate_all(&json).unwrap(),
                "{name}: {json}"
            );
            for flag in flags.iter().map(String::as_str).chain(["no-such-flag"]) {
                for expected in [None, Some(FlagType::Boolean), Some(FlagType::String)] {
                    assert_eq!(
                        client.evaluate(flag, expected, &ctx).unwrap(),
                        client.evaluate(flag, expected, &json).unwrap(),
                        "{name}: {flag} {expected:?} {json}"
                    );
                }
            }
        }
        client.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_yields_the_exposures_and_events_of_its_json_form() {
    let (tags, key) = (json!(["vip"]), json!("user-json"));
    for (name, engine) in engines() {
        let (by_context, url) = Ingest::start(202).await;
        let context_client = client(engine.clone(), url).await;
        let (by_json, url) = Ingest::start(202).await;
        let json_client = client(engine, url).await;
        for ctx in contexts(&tags, &key) {
            let json = ctx.to_json();
            context_client.evaluate_all(&ctx).unwrap();
            json_client.evaluate_all(&json).unwrap();
            for flag in context_client.flag_keys() {
                context_client.evaluate(&flag, None, &ctx).unwrap();
                json_client.evaluate(&flag, None, &json).unwrap();
            }
            assert_eq!(
                context_client.track("purchase", &ctx, Some(9.5)).is_ok(),
                json_client.track("purchase", &json, Some(9.5)).is_ok(),
                "{name}: {json}"
            );
        }
        assert!(context_client.close().await && json_client.close().await);
        let exposures = by_context.exposures();
        assert!(
            exposures.iter().any(|e| e["country"] == "CA")
                && exposures.iter().any(|e| e["deviceType"] == "mobile"),
            "{name}: nested attributes reach exposures: {exposures:?}"
        );
        assert!(exposures.len() >= 4, "{name}: {exposures:?}");
        assert_eq!(exposures, by_json.exposures(), "{name}");
        let (events, json_events) = (events(&by_context), events(&by_json));
        assert_eq!(events.len(), 4, "{name}: keyed contexts only: {events:?}");
        assert_eq!(events, json_events, "{name}");
        let (a, b) = (context_client.health(), json_client.health());
        assert_eq!(
            (a.counters.exposures_sent, a.counters.exposures_deduplicated),
            (b.counters.exposures_sent, b.counters.exposures_deduplicated),
            "{name}"
        );
    }
}

/// The events an ingest received, without their random ids.
fn events(ingest: &Ingest) -> Vec<Value> {
    ingest
        .bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, b)| b["kind"] == "events")
        .flat_map(|(_, b)| b["events"].as_array().unwrap().clone())
        .map(|mut e| {
            e.as_object_mut().unwrap().remove("id");
            e
        })
        .collect()
}
