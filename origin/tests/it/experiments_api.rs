//! Metrics, experiments and their results through the API, on SQLite and
//! PostgreSQL: CRUD with ETag/If-Match (412/428), 422 with every problem,
//! 409 for deleting a metric an experiment uses,
//! the lifecycle draft → running → stopped → decided, results on a seeded
//! dataset (arm counts, conversion rates, lift signs, p-values, SRM on a
//! skewed allocation, multi-arm users, CSV), and `bunting experiment
//! results` printing its table from a SQLite file.

use axum::http::{Method, StatusCode};
use bunting_origin::results::CSV_HEADER;
use bunting_origin::store::{Exposure, MetricEvent, Store};
use serde_json::{Value, json};

use crate::common::app::{TestApp, problems};

both!(
    crud_and_lifecycle,
    results_over_http,
    results_skewed_allocation
);

const P: &str = "/orgs/acme/projects/web";
const X: &str = "/orgs/acme/projects/web/environments/production/experiments";

/// A lifecycle transition (no body) with `If-Match: etag`.
async fn transition(api: &TestApp, path: &str, etag: &str) -> (StatusCode, Option<String>, Value) {
    api.call(Method::POST, path, None, &[("if-match", etag)])
        .await
}

/// Org `acme`, project `web`, environments `production` and `staging`,
/// flag `checkout` (on/off), metrics `purchased` (conversion of
/// `purchase`) and `revenue` (mean of `purchase` values).
async fn setup(api: &TestApp) {
    api.made("/orgs", json!({"key": "acme", "name": "Acme"}), 201)
        .await;
    api.made(
        "/orgs/acme/projects",
        json!({"key": "web", "name": "Web"}),
        201,
    )
    .await;
    for env in ["production", "staging"] {
        api.made(
            &format!("{P}/environments"),
            json!({"key": env, "name": env}),
            201,
        )
        .await;
    }
    api.made(
        &format!("{P}/flags"),
        json!({"key": "checkout", "flagType": "boolean",
               "variants": {"on": true, "off": false}, "offVariant": "off"}),
        201,
    )
    .await;
    api.made(
        &format!("{P}/metrics"),
        json!({"key": "purchased", "kind": "conversion", "event": "purchase"}),
        201,
    )
    .await;
    api.made(
        &format!("{P}/metrics"),
        json!({"key": "revenue", "kind": "mean", "event": "purchase"}),
        201,
    )
    .await;
}

async fn crud_and_lifecycle(store: Store) {
    let api = TestApp::root(store);
    setup(&api).await;

    // Metrics: read with ETag, replace with If-Match, 412/428/422.
    let (s, tag, m) = api.get(&format!("{P}/metrics/revenue")).await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["kind"], "mean");
    let tag = tag.unwrap();
    let path = format!("{P}/metrics/revenue");
    let capped = json!({"key": "revenue", "kind": "mean", "event": "purchase", "cap": 500.0});
    let (s, _, b) = api
        .call(Method::PUT, &path, Some(capped.clone()), &[])
        .await;
    assert_eq!(s, 428, "{b}");
    let (s, _, b) = api
        .call(
            Method::PUT,
            &path,
            Some(capped.clone()),
            &[("if-match", "\"99\"")],
        )
        .await;
    assert_eq!(s, 412, "{b}");
    assert_eq!(b["error"]["currentEtag"], tag.as_str());
    let (s, new_tag, b) = api
        .call(Method::PUT, &path, Some(capped), &[("if-match", &tag)])
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["cap"], 500.0);
    assert_ne!(new_tag.unwrap(), tag);
    let (s, _, b) = api
        .post(
            &format!("{P}/metrics"),
            json!({"key": "bad key", "kind": "ratio", "event": "", "windowSeconds": 0}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let paths = problems(&b);
    for want in ["key", "event", "denominatorEvent", "windowSeconds"] {
        assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
    }
    let (s, _, b) = api.get(&format!("{P}/metrics")).await;
    assert_eq!(s, 200);
    let keys: Vec<&str> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["purchased", "revenue"]);

    // Experiments: every problem at once.
    let (s, _, b) = api
        .post(
            X,
            json!({"key": "checkout-test", "flag": "nope", "control": "off",
                   "primaryMetric": "missing", "secondaryMetrics": ["gone"]}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let paths = problems(&b);
    for want in ["flag", "primaryMetric", "secondaryMetrics[0]"] {
        assert!(paths.iter().any(|p| p == want), "{want} in {paths:?}");
    }
    let spec = json!({"key": "checkout-test", "flag": "checkout", "control": "off",
                      "primaryMetric": "purchased", "secondaryMetrics": ["revenue"]});
    let x = api.made(X, spec.clone(), 201).await;
    assert_eq!(x["status"], "draft");
    let xp = format!("{X}/checkout-test");
    let (s, tag, _) = api.get(&xp).await;
    assert_eq!(s, 200);
    let tag = tag.unwrap();
    let (s, _, b) = api.get(X).await;
    assert_eq!(
        (s, b["items"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );

    // A duplicate key: 409.
    let (s, _, b) = api.post(X, spec.clone()).await;
    assert_eq!(s, 409, "{b}");

    // Replace while a draft.
    let mut edited = spec.clone();
    edited["hypothesis"] = json!("a shorter checkout converts better");
    let (s, tag2, b) = api
        .call(
            Method::PUT,
            &xp,
            Some(edited.clone()),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["hypothesis"], "a shorter checkout converts better");
    let tag2 = tag2.unwrap();

    // Start: stale tag 412, no tag 428, then running.
    let (s, _, b) = transition(&api, &format!("{xp}/start"), &tag).await;
    assert_eq!(s, 412, "{b}");
    let (s, _, b) = api
        .call(Method::POST, &format!("{xp}/start"), None, &[])
        .await;
    assert_eq!(s, 428, "{b}");
    let (s, tag3, b) = transition(&api, &format!("{xp}/start"), &tag2).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "running");
    assert!(b["startedAt"].is_string());
    let tag3 = tag3.unwrap();

    // Running: the design is fixed, deletion refused, its metrics too.
    let mut changed = edited.clone();
    changed["control"] = json!("on");
    let (s, _, b) = api
        .call(Method::PUT, &xp, Some(changed), &[("if-match", &tag3)])
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(problems(&b).contains(&"status".to_string()));
    let (s, _, b) = api
        .call(Method::DELETE, &xp, None, &[("if-match", &tag3)])
        .await;
    assert_eq!(s, 422, "{b}");
    let (_, mtag, _) = api.get(&format!("{P}/metrics/purchased")).await;
    let (s, _, b) = api
        .call(
            Method::DELETE,
            &format!("{P}/metrics/purchased"),
            None,
            &[("if-match", &mtag.unwrap())],
        )
        .await;
    // 409 `in_use`, naming the experiment (one problem per user).
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["error"]["code"], "in_use", "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("running experiment \"checkout-test\" in production"),
        "{b}"
    );
    assert_eq!(problems(&b), ["metric"]);
    // Starting twice is a 422.
    let (s, _, b) = transition(&api, &format!("{xp}/start"), &tag3).await;
    assert_eq!(s, 422, "{b}");

    // Stop, then decide: a variant that is not an arm is refused.
    let (s, tag4, b) = transition(&api, &format!("{xp}/stop"), &tag3).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "stopped");
    let tag4 = tag4.unwrap();
    let decide = format!("{xp}/decide");
    let (s, _, b) = api
        .call(
            Method::POST,
            &decide,
            Some(json!({"variant": "maybe"})),
            &[("if-match", &tag4)],
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(problems(&b), ["variant"]);
    let (s, _, b) = api
        .call(
            Method::POST,
            &decide,
            Some(json!({"variant": "on", "rationale": "+3 points"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(s, 412, "{b}");
    let (s, tag5, b) = api
        .call(
            Method::POST,
            &decide,
            Some(json!({"variant": "on", "rationale": "+3 points"})),
            &[("if-match", &tag4)],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "decided");
    assert_eq!(b["decision"]["variant"], "on");
    assert_eq!(b["decision"]["decidedBy"], "admin");
    let tag5 = tag5.unwrap();
    // Decided: read-only.
    let (s, _, b) = api
        .call(Method::PUT, &xp, Some(edited), &[("if-match", &tag5)])
        .await;
    assert_eq!(s, 422, "{b}");

    // Delete with If-Match; then it is gone.
    let (s, _, b) = api
        .call(Method::DELETE, &xp, None, &[("if-match", &tag5)])
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _, b) = api.get(&xp).await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["code"], "not_found");
    // Unused now, the metric deletes.
    let (_, mtag, _) = api.get(&format!("{P}/metrics/purchased")).await;
    let (s, _, b) = api
        .call(
            Method::DELETE,
            &format!("{P}/metrics/purchased"),
            None,
            &[("if-match", &mtag.unwrap())],
        )
        .await;
    assert_eq!(s, 204, "{b}");
}

/// The id of the environment the edge names `name`.
async fn env_id(store: &Store, name: &str) -> i64 {
    store.environment_ids(&[name.into()]).await.unwrap()[name]
}

/// Exposures of `users` users to `variant` in environment `env` (its id),
/// from `at` on (one a second), with ids prefixed by `prefix`.
fn exposures(env: i64, prefix: &str, variant: &str, users: u32, at: i64) -> Vec<Exposure> {
    (0..users)
        .map(|i| Exposure {
            env_id: env,
            id: format!("{prefix}-{variant}-{i}"),
            flag_key: "checkout".into(),
            variant: variant.into(),
            user_key: format!("{prefix}-user-{variant}-{i}"),
            time_ms: at + i64::from(i) * 1000,
            snapshot_version: None,
            rule_id: None,
            reason: None,
            country: None,
            device_type: None,
            received_ms: at,
        })
        .collect()
}

/// A purchase worth `value` by the `i`-th user of `variant`, an hour after
/// their exposure.
fn purchase(env: i64, prefix: &str, variant: &str, i: u32, at: i64, value: f64) -> MetricEvent {
    let t = at + i64::from(i) * 1000 + 3_600_000;
    MetricEvent {
        env_id: env,
        id: format!("{prefix}-buy-{variant}-{i}"),
        name: "purchase".into(),
        user_key: format!("{prefix}-user-{variant}-{i}"),
        value: Some(value),
        time_ms: t,
        received_ms: t,
        properties: None,
    }
}

/// `users` exposures of each `(variant, users)`, in order.
fn arms(env: i64, prefix: &str, arms: &[(&str, u32)], at: i64) -> Vec<Exposure> {
    arms.iter()
        .flat_map(|(variant, users)| exposures(env, prefix, variant, *users, at))
        .collect()
}

/// Purchases worth `value` by the first `buyers` users of each
/// `(variant, buyers)`, in order.
fn purchases(
    env: i64,
    prefix: &str,
    buyers: &[(&str, u32)],
    at: i64,
    value: f64,
) -> Vec<MetricEvent> {
    buyers
        .iter()
        .flat_map(|(variant, n)| (0..*n).map(move |i| purchase(env, prefix, variant, i, at, value)))
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Starts experiment `key` of `env` (status 200).
async fn start(api: &TestApp, env: &str, key: &str) {
    let path = format!("{P}/environments/{env}/experiments/{key}");
    let (_, tag, _) = api.get(&path).await;
    let (s, _, b) = transition(api, &format!("{path}/start"), &tag.unwrap()).await;
    assert_eq!(s, 200, "{b}");
}

async fn results_over_http(store: Store) {
    let api = TestApp::root(store.clone());
    setup(&api).await;
    api.made(
        X,
        json!({"key": "checkout-test", "flag": "checkout", "control": "off",
               "primaryMetric": "purchased", "secondaryMetrics": ["revenue"]}),
        201,
    )
    .await;
    let results = format!("{X}/checkout-test/results");

    // Before any data: zero users, no SRM, a warning, and still 200.
    let (s, _, r) = api.get(&results).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["srm"], Value::Null);
    assert_eq!(r["untrustworthy"], false);
    assert!(r["warnings"].to_string().contains("no exposures"), "{r}");

    start(&api, "production", "checkout-test").await;
    // 1000 users per arm, exposed after the start; 100 buy in control and
    // 150 in treatment, each for 20.
    let env = env_id(&store, "acme/web/production").await;
    let at = now_ms() + 10_000;
    let mut ex = arms(env, "p", &[("off", 1000), ("on", 1000)], at);
    // 5 control users also saw the treatment later.
    for i in 0..5 {
        let mut e = ex[i].clone();
        e.id = format!("again-{i}");
        e.variant = "on".into();
        e.time_ms += 60_000;
        ex.push(e);
    }
    store.insert_exposures(&ex).await.unwrap();
    let events = purchases(env, "p", &[("off", 100), ("on", 150)], at, 20.0);
    store.insert_metric_events(&events).await.unwrap();

    let reply = api.call_with(Method::GET, &results, None, &[]).await;
    let (s, r, ct) = (reply.status, reply.body.clone(), reply.content_type());
    assert_eq!(s, 200, "{r}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(r["control"], "off");
    assert_eq!(r["arms"][0]["variant"], "off");
    assert_eq!(r["arms"][0]["users"], 1000);
    assert_eq!(r["arms"][1]["variant"], "on");
    assert_eq!(r["arms"][1]["users"], 1000);
    assert_eq!(r["untrustworthy"], false, "{r}");
    let srm = r["srm"]["pValue"].as_f64().unwrap();
    assert!(srm > 0.5, "{srm}");
    assert_eq!(r["multiArmUsers"], 5);
    assert!(
        r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("5 users")),
        "{r}"
    );

    let metric = |key: &str| {
        r["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("no metric {key} in {r}"))
            .clone()
    };
    let purchased = metric("purchased");
    assert_eq!(purchased["role"], "primary");
    let (off, on) = (&purchased["arms"][0], &purchased["arms"][1]);
    assert_eq!(off["value"], 0.1);
    assert_eq!(on["value"], 0.15);
    assert_eq!(on["conversions"], 150);
    assert_eq!(off["comparison"], Value::Null);
    let c = &on["comparison"];
    assert_eq!(c["test"], "zTest");
    assert!((c["absolute"]["estimate"].as_f64().unwrap() - 0.05).abs() < 1e-12);
    assert!((c["relative"]["estimate"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert!(c["absolute"]["ciLow"].as_f64().unwrap() > 0.0, "{c}");
    let p = c["pValue"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p) && p < 0.01, "{p}");
    assert_eq!(c["pValueHolm"], Value::Null, "two arms: no correction");
    let seq = c["sequential"]["pValue"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&seq) && seq >= p, "{seq} vs {p}");
    let beat = c["chanceToBeatControl"].as_f64().unwrap();
    assert!(beat > 0.99 && beat <= 1.0, "{beat}");
    assert!(c["expectedLoss"].as_f64().unwrap() >= 0.0);

    let revenue = metric("revenue");
    assert_eq!(revenue["role"], "secondary");
    assert_eq!(revenue["arms"][0]["value"], 2.0);
    assert_eq!(revenue["arms"][1]["value"], 3.0);
    let c = &revenue["arms"][1]["comparison"];
    assert_eq!(c["test"], "welch");
    assert!(c["absolute"]["estimate"].as_f64().unwrap() > 0.0);
    let p = c["pValue"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p), "{p}");

    // The daily series of the primary metric.
    let series = r["series"].as_array().unwrap();
    assert!(!series.is_empty(), "{r}");
    let last = &series[series.len() - 1]["arms"];
    assert_eq!(last[0]["variant"], "off");
    assert!(last[1]["relative"]["estimate"].as_f64().unwrap() > 0.0);

    // CSV: by query and by Accept; one row per metric and arm.
    for (path, headers) in [
        (format!("{results}?format=csv"), vec![]),
        (results.clone(), vec![("accept", "text/csv")]),
    ] {
        let reply = api.call_with(Method::GET, &path, None, &headers).await;
        let (s, body, ct) = (reply.status, reply.body.clone(), reply.content_type());
        assert_eq!(s, 200, "{body}");
        assert!(ct.starts_with("text/csv"), "{ct}");
        let text = body.as_str().unwrap().to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 1 + 2 * 2, "{text}");
        assert!(lines[1].starts_with("purchased,conversion,primary,off,1000,0.1,"));
        assert!(lines[2].starts_with("purchased,conversion,primary,on,1000,0.15,"));
        assert!(lines[3].starts_with("revenue,mean,secondary,off,1000,2,"));
        let cols = CSV_HEADER.split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == cols), "{text}");
    }
    // The text table `bunting experiment results` prints.
    let table = api
        .call_with(Method::GET, &format!("{results}?format=table"), None, &[])
        .await;
    assert_eq!(table.status, 200, "{}", table.text);
    assert!(table.content_type().starts_with("text/plain"));
    assert!(table.text.contains("SRM: chi-square"), "{}", table.text);
    let (s, _, b) = api.get(&format!("{results}?format=xml")).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(problems(&b), ["format"]);
    let (s, _, b) = api.get(&format!("{X}/nope/results")).await;
    assert_eq!(s, 404, "{b}");
}

/// A deliberately skewed allocation: planned 50/50, served 1300/700. With
/// three arms, Holm-adjusted p-values appear.
async fn results_skewed_allocation(store: Store) {
    let api = TestApp::root(store.clone());
    setup(&api).await;
    let staging = format!("{P}/environments/staging/experiments");
    api.made(
        &staging,
        json!({"key": "skewed", "flag": "checkout", "control": "off",
               "allocation": {"off": 50, "on": 50}, "primaryMetric": "purchased"}),
        201,
    )
    .await;
    start(&api, "staging", "skewed").await;
    let env = env_id(&store, "acme/web/staging").await;
    let at = now_ms() + 10_000;
    let ex = arms(env, "s", &[("off", 1300), ("on", 700)], at);
    store.insert_exposures(&ex).await.unwrap();
    let events = purchases(env, "s", &[("off", 130), ("on", 70)], at, 1.0);
    store.insert_metric_events(&events).await.unwrap();
    let (s, _, r) = api.get(&format!("{staging}/skewed/results")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["untrustworthy"], true, "{r}");
    assert!(r["srm"]["pValue"].as_f64().unwrap() < 0.001);
    assert_eq!(r["srm"]["untrustworthy"], true);
    let first = r["warnings"][0].as_str().unwrap();
    assert!(first.starts_with("SAMPLE RATIO MISMATCH"), "{first}");

    // Three arms (a string flag), equal allocation: Holm appears.
    api.made(
        &format!("{P}/flags"),
        json!({"key": "color", "flagType": "string",
               "variants": {"red": "red", "green": "green", "blue": "blue"},
               "offVariant": "red"}),
        201,
    )
    .await;
    api.made(
        &staging,
        json!({"key": "colors", "flag": "color", "control": "red", "primaryMetric": "purchased"}),
        201,
    )
    .await;
    start(&api, "staging", "colors").await;
    let at = now_ms() + 10_000;
    let mut ex = Vec::new();
    for v in ["red", "green", "blue"] {
        ex.extend(exposures(env, "c", v, 500, at).into_iter().map(|mut e| {
            e.flag_key = "color".into();
            e
        }));
    }
    store.insert_exposures(&ex).await.unwrap();
    let events = purchases(
        env,
        "c",
        &[("red", 50), ("green", 80), ("blue", 55)],
        at,
        1.0,
    );
    store.insert_metric_events(&events).await.unwrap();
    let (s, _, r) = api.get(&format!("{staging}/colors/results")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["untrustworthy"], false, "{r}");
    let arms = r["metrics"][0]["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 3);
    assert_eq!(arms[0]["variant"], "red");
    for a in &arms[1..] {
        let c = &a["comparison"];
        let (p, holm) = (
            c["pValue"].as_f64().unwrap(),
            c["pValueHolm"].as_f64().unwrap(),
        );
        assert!(holm >= p && holm <= 1.0, "{c}");
    }
}

/// `bunting experiment results` prints the table, read through a real
/// `bunting serve` (`?format=table`).
#[test]
fn cli_prints_the_table() {
    let c = crate::common::origin::Cli::sqlite("bunting-experiment-cli", "results");
    c.with_store(async |store: &Store| {
        let api = TestApp::root(store.clone());
        setup(&api).await;
        api.made(
            X,
            json!({"key": "checkout-test", "flag": "checkout", "control": "off",
                   "primaryMetric": "purchased", "secondaryMetrics": ["revenue"]}),
            201,
        )
        .await;
        start(&api, "production", "checkout-test").await;
        let env = env_id(store, "acme/web/production").await;
        let at = now_ms() + 10_000;
        let ex = arms(env, "p", &[("off", 400), ("on", 400)], at);
        store.insert_exposures(&ex).await.unwrap();
        let events = purchases(env, "p", &[("off", 40), ("on", 60)], at, 10.0);
        store.insert_metric_events(&events).await.unwrap();
    });
    let results = |key: &str| {
        c.run(&[
            "experiment",
            "results",
            key,
            "--org",
            "acme",
            "--project",
            "web",
            "--env",
            "production",
        ])
    };
    let out = results("checkout-test");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "experiment checkout-test (flag checkout, control off, running)",
        "metric purchased (conversion, primary)",
        "metric revenue (mean, secondary)",
        "p (fixed)",
        "p (sequential)",
        "P(beat control)",
        "(control)",
        "SRM: chi-square",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let on = text
        .lines()
        .find(|l| l.trim_start().starts_with("on ") && l.contains("15.00%"))
        .unwrap_or_else(|| panic!("no treatment row with 15.00% in:\n{text}"));
    assert!(on.contains("400") && on.contains("+50.00% ["), "{on}");

    // An unknown experiment: the API's 404, exit 1.
    let out = results("nope");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading the results of experiment \"nope\"")
            && err.contains("answered 404 Not Found"),
        "{err}"
    );
}
