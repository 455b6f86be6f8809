//! Incremental looks at experiments (`store::results_cache`, PostgreSQL):
//! a look updates the sums of the previous one with the users whose rows
//! changed since. Every look here is compared, exactly, with the raw-path
//! reference (`AggregateOptions::raw`) in the same state:
//!
//! * seeded random ingestion in rounds (new users, returning users,
//!   exposures and events arriving late and out of order, redelivered
//!   batches, other flags and environments), for experiments started and
//!   stopped at random times, with a second metric configuration looked at
//!   only every third round, and a rollup rebuild in between;
//! * a transaction that wrote before a look and commits after it counts at
//!   the next look (a serial watermark would lose it);
//! * the results served over HTTP follow ingestion, and purging a deleted
//!   environment's events drops its cached looks;
//! * the monitor's rounds over an experiment and a guarded rollout of one
//!   flag look incrementally, each round's checks and guard health equal
//!   to those from raw-path looks, each look in its own cached state;
//! * after a results refresh round (`bunting serve`'s background task), opening
//!   a running or just stopped experiment's results aggregates nothing in full.
//!
//! Metric values are integers, so every sum is exact in `f64` and the
//! incremental figures must equal the reference bit for bit.

use bunting_origin::model::experiment::ExperimentSpec;
use bunting_origin::model::metric::{MetricKind, MetricSpec};
use bunting_origin::store::aggregate::{AggregateOptions, AnalysisScope, ExperimentData};
use bunting_origin::store::{Exposure, MetricEvent, Store};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Row};

use crate::common;
use crate::common::app::TestApp;
use crate::common::world::World;

const HOUR: i64 = 3_600_000;
/// 2025-11-25T00:00:00Z.
const T: i64 = 1_764_028_800_000;

fn stamp(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn user(u: usize) -> String {
    format!("{:016x}", (u as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The incremental look and the reference in the same state; they must be
/// equal. Returns the look.
async fn look(
    s: &Store,
    scope: &AnalysisScope,
    metrics: &[MetricSpec],
    what: &str,
) -> ExperimentData {
    let o = AggregateOptions {
        series: true,
        incremental: true,
        ..AggregateOptions::default()
    };
    let fast = s.scope_data(scope, metrics, &o).await.unwrap();
    let raw = AggregateOptions {
        raw: true,
        incremental: false,
        ..o
    };
    let reference = s.scope_data(scope, metrics, &raw).await.unwrap();
    assert_eq!(fast, reference, "{what}");
    fast
}

/// Rounds of random batches of exposures (flag `f`, variants a/b/c; some
/// to flag `g` and to another environment) and metric events, with late
/// and redelivered batches; after each round every experiment window is
/// looked at incrementally and compared with the reference.
#[tokio::test]
async fn incremental_looks_equal_the_raw_path() {
    let (s, _guard) = common::postgres().await;
    let w = World::acme(&s).await;
    let other = s
        .create_environment(&w.actor, w.project, "staging", "Staging")
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(0x16);

    let mut revenue = MetricSpec::conversion("revenue", "purchase");
    revenue.kind = MetricKind::Mean;
    revenue.cap = Some(150.0);
    revenue.window_seconds = Some(6 * 3600);
    let mut per_visit = MetricSpec::conversion("per-visit", "purchase");
    per_visit.kind = MetricKind::Ratio;
    per_visit.denominator_event = Some("visit".into());
    let metrics = vec![
        MetricSpec::conversion("purchased", "purchase"),
        revenue.clone(),
        per_visit,
    ];
    // A second configuration: another cap and window, looked at less often.
    let mut capped = revenue;
    capped.cap = Some(40.0);
    capped.window_seconds = Some(30 * 3600);
    let mut visits = MetricSpec::conversion("visits", "visit");
    visits.kind = MetricKind::Sum;
    let second = vec![capped, visits];

    let windows = [
        (None, None),
        (Some(T + 10 * HOUR), None),
        (Some(T + 5 * HOUR), Some(T + 30 * HOUR)),
        (None, Some(T + 20 * HOUR)),
    ];
    let scope = |(from, until): (Option<i64>, Option<i64>)| AnalysisScope {
        environment_id: w.env,
        flag: "f".into(),
        control: "a".into(),
        variants: vec!["b".into(), "c".into()],
        primary_metric: Some("revenue".into()),
        started_at: from.map(stamp),
        stopped_at: until.map(stamp),
    };

    let mut sent_exposures: Vec<Vec<Exposure>> = Vec::new();
    let mut sent_events: Vec<Vec<MetricEvent>> = Vec::new();
    let mut next_user = 0;
    let mut next_id = 0;
    for round in 0..7 {
        // New users, then some of the earlier ones again (often earlier in
        // time than their first exposure so far, or to another variant).
        let fresh = rng.random_range(20..60);
        let mut users: Vec<usize> = (next_user..next_user + fresh).collect();
        next_user += fresh;
        for _ in 0..rng.random_range(0..30) {
            if next_user > 0 {
                users.push(rng.random_range(0..next_user));
            }
        }
        let mut exposures = Vec::new();
        for &u in &users {
            for _ in 0..rng.random_range(1..4) {
                next_id += 1;
                let t = T + rng.random_range(0..48 * 60) * 60_000;
                let env_id = if rng.random_bool(0.1) {
                    other.id
                } else {
                    w.env
                };
                let flag = if rng.random_bool(0.85) { "f" } else { "g" };
                exposures.push(Exposure {
                    env_id,
                    id: format!("x-{next_id}"),
                    flag_key: flag.into(),
                    variant: ["a", "b", "c"][rng.random_range(0..3)].into(),
                    user_key: user(u),
                    time_ms: t,
                    snapshot_version: None,
                    rule_id: None,
                    reason: None,
                    country: None,
                    device_type: None,
                    received_ms: t,
                });
            }
        }
        let mut events = Vec::new();
        for _ in 0..rng.random_range(50..200) {
            next_id += 1;
            let t = T + rng.random_range(-24..72) * HOUR + rng.random_range(0..HOUR);
            events.push(MetricEvent {
                env_id: if rng.random_bool(0.05) {
                    other.id
                } else {
                    w.env
                },
                id: format!("e-{next_id}"),
                name: ["purchase", "visit", "other"][rng.random_range(0..3)].into(),
                user_key: user(rng.random_range(0..next_user)),
                value: rng
                    .random_bool(0.8)
                    .then(|| rng.random_range(0..200) as f64),
                time_ms: t,
                received_ms: t,
                properties: None,
            });
        }
        exposures.shuffle(&mut rng);
        events.shuffle(&mut rng);
        // In several batches, with an earlier batch delivered again.
        for chunk in exposures.chunks(25) {
            s.insert_exposures(chunk).await.unwrap();
        }
        for chunk in events.chunks(40) {
            s.insert_metric_events(chunk).await.unwrap();
        }
        if let Some(old) = sent_exposures.choose(&mut rng) {
            s.insert_exposures(old).await.unwrap();
        }
        if let Some(old) = sent_events.choose(&mut rng) {
            s.insert_metric_events(old).await.unwrap();
        }
        sent_exposures.push(exposures);
        sent_events.push(events);
        if round == 4 {
            s.rebuild_exposure_users().await.unwrap();
        }

        for window in windows {
            look(
                &s,
                &scope(window),
                &metrics,
                &format!("round {round}, {window:?}"),
            )
            .await;
        }
        if round % 3 == 0 {
            look(
                &s,
                &scope(windows[1]),
                &second,
                &format!("round {round}, second"),
            )
            .await;
        }
        // A look with nothing new in between.
        look(
            &s,
            &scope(windows[0]),
            &metrics,
            &format!("round {round}, again"),
        )
        .await;
    }
    let cached: i64 = sqlx::query("SELECT COUNT(*) AS n FROM analysis_cache")
        .fetch_one(s.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(
        cached,
        windows.len() as i64 + 1,
        "one state per configuration"
    );
}

/// A transaction that stored a metric event before a look and commits after
/// it, while a later transaction committed before the look: the look does
/// not see the first, the next look counts it.
#[tokio::test]
async fn a_transaction_open_during_a_look_counts_at_the_next_look() {
    let (url, _guard) = common::postgres_schema().await;
    let s = Store::open(&url).await.unwrap();
    let w = World::acme(&s).await;
    let exposures: Vec<Exposure> = (0..10)
        .map(|u| Exposure {
            env_id: w.env,
            id: format!("x-{u}"),
            flag_key: "f".into(),
            variant: if u % 2 == 0 { "a" } else { "b" }.into(),
            user_key: format!("u{u}"),
            time_ms: T + u * 60_000,
            snapshot_version: None,
            rule_id: None,
            reason: None,
            country: None,
            device_type: None,
            received_ms: T,
        })
        .collect();
    s.insert_exposures(&exposures).await.unwrap();
    let scope = AnalysisScope {
        environment_id: w.env,
        flag: "f".into(),
        control: "a".into(),
        variants: vec!["b".into()],
        primary_metric: None,
        started_at: None,
        stopped_at: None,
    };
    let metrics = [MetricSpec::conversion("purchased", "purchase")];
    let purchase = |id: &str, user: &str| MetricEvent {
        env_id: w.env,
        id: id.into(),
        name: "purchase".into(),
        user_key: user.into(),
        value: None,
        time_ms: T + HOUR,
        received_ms: T + HOUR,
        properties: None,
    };
    let converted = |d: &ExperimentData| -> u64 {
        d.arms
            .iter()
            .map(|a| a.metrics["purchased"].conversions.unwrap())
            .sum()
    };
    let first = look(&s, &scope, &metrics, "before").await;
    assert_eq!(converted(&first), 0);

    // Takes its transaction id now, commits after the next look.
    let mut slow = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut slow).await.unwrap();
    sqlx::query(
        "INSERT INTO metric_events (env_id, id, name, user_key, value, time_ms, received_ms) \
         VALUES ($1, 'slow', 'purchase', 'u1', NULL, $2, $2)",
    )
    .bind(w.env)
    .bind(T + HOUR)
    .execute(&mut slow)
    .await
    .unwrap();
    // A later transaction, committed before the look.
    s.insert_metric_events(&[purchase("quick", "u2")])
        .await
        .unwrap();
    let during = look(&s, &scope, &metrics, "while the slow transaction is open").await;
    assert_eq!(converted(&during), 1);

    sqlx::query("COMMIT").execute(&mut slow).await.unwrap();
    slow.close().await.unwrap();
    let after = look(&s, &scope, &metrics, "after it committed").await;
    assert_eq!(converted(&after), 2, "the slow transaction's event counts");
    s.pool().close().await;
}

/// The results the API serves follow ingestion (each compared with the
/// reference), and purging a deleted environment's events drops its
/// cached looks.
#[tokio::test]
async fn served_results_follow_ingestion_and_purges_drop_looks() {
    let (s, _guard) = common::postgres().await;
    let w = World::acme(&s).await;
    w.flag(&s, "checkout").await;
    let purchased = MetricSpec::conversion("purchased", "purchase");
    w.metric(&s, &purchased).await;
    let x = s
        .create_experiment(
            &w.actor,
            w.env,
            &ExperimentSpec::new("t", "checkout", "off", "purchased"),
        )
        .await
        .unwrap();
    let x = s.start_experiment(&w.actor, x.id, x.version).await.unwrap();
    let api = TestApp::root(s.clone());
    let path = "/orgs/acme/projects/web/environments/production/experiments/t/results";
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    for step in 0..3i64 {
        let exposures: Vec<Exposure> = (0..20)
            .map(|i| {
                let u = step * 20 + i;
                Exposure {
                    env_id: w.env,
                    id: format!("x-{u}"),
                    flag_key: "checkout".into(),
                    variant: if u % 3 == 0 { "off" } else { "on" }.into(),
                    user_key: format!("u{u}"),
                    time_ms: now + 1_000 + u,
                    snapshot_version: None,
                    rule_id: None,
                    reason: None,
                    country: None,
                    device_type: None,
                    received_ms: now,
                }
            })
            .collect();
        s.insert_exposures(&exposures).await.unwrap();
        let events: Vec<MetricEvent> = (0..=step * 7)
            .map(|i| MetricEvent {
                env_id: w.env,
                id: format!("e-{step}-{i}"),
                name: "purchase".into(),
                user_key: format!("u{i}"),
                value: None,
                time_ms: now + 60_000,
                received_ms: now,
                properties: None,
            })
            .collect();
        s.insert_metric_events(&events).await.unwrap();

        let (status, _, served) = api.get(path).await;
        assert_eq!(status, 200, "{served}");
        let (_, data) = s.results_data(w.project, &x).await.unwrap();
        let reference = raw_results(&s, &x, std::slice::from_ref(&purchased)).await;
        assert_eq!(data, reference, "step {step}");
        for (i, arm) in reference.arms.iter().enumerate() {
            assert_eq!(served["arms"][i]["variant"], arm.variant.as_str());
            assert_eq!(served["arms"][i]["users"], arm.users, "step {step}");
        }
    }
    let cached = |s: Store| async move {
        sqlx::query("SELECT COUNT(*) AS n FROM analysis_cache WHERE env_id = $1")
            .bind(w.env)
            .fetch_one(s.pool())
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap()
    };
    assert_eq!(cached(s.clone()).await, 1);
    let env = s.environment(w.env).await.unwrap();
    s.delete_environment(&w.actor, w.env, env.version)
        .await
        .unwrap();
    s.purge_orphaned_events(0).await.unwrap();
    assert_eq!(cached(s.clone()).await, 0);
}

/// The cached looks of environment `env` (without the sentinel): key and
/// stored state, by key.
async fn cached_looks(s: &Store, env: i64) -> Vec<(String, serde_json::Value)> {
    sqlx::query(
        "SELECT key, state FROM analysis_cache WHERE env_id = $1 AND key <> 'sentinel' \
         ORDER BY key",
    )
    .bind(env)
    .fetch_all(s.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let state: String = r.try_get("state").unwrap();
        (
            r.try_get("key").unwrap(),
            serde_json::from_str(&state).unwrap(),
        )
    })
    .collect()
}

/// Plants a cached look unused for 30 days in environment `env`: a full
/// aggregation deletes such looks, so it survives only while every look
/// since is incremental ([`sentinel_kept`]).
async fn plant_sentinel(s: &Store, env: i64) {
    sqlx::query(
        "INSERT INTO analysis_cache (key, env_id, flag_key, state, used_ms) \
         VALUES ('sentinel', $1, 'none', '{}', 0) ON CONFLICT (key) DO NOTHING",
    )
    .bind(env)
    .execute(s.pool())
    .await
    .unwrap();
}

/// Whether the look planted by [`plant_sentinel`] is still there.
async fn sentinel_kept(s: &Store) -> bool {
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM analysis_cache WHERE key = 'sentinel'")
        .fetch_one(s.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    n == 1
}

/// The results endpoint's data for `x` (with the daily series) over the
/// raw path: the reference.
async fn raw_results(
    s: &Store,
    x: &bunting_origin::model::experiment::ExperimentRecord,
    metrics: &[MetricSpec],
) -> ExperimentData {
    s.experiment_data(
        x,
        metrics,
        &AggregateOptions {
            series: true,
            raw: true,
            ..AggregateOptions::default()
        },
    )
    .await
    .unwrap()
}

/// The monitor's rounds over a running experiment and a guarded rollout
/// of the same flag and environment look incrementally: every round's
/// checks and the recorded guard health equal those of a second monitor
/// fed raw-path looks; the second round updates the two cached looks
/// without a full aggregation; the cached sums are what the next round
/// reads; and the monitor's look at the experiment is the results' own
/// (all its metrics and the series): the results endpoint (and the
/// results refresh) share its state instead of keeping a second one.
#[tokio::test]
async fn monitor_rounds_look_incrementally() {
    use bunting_origin::api::{AppState, ServeConfig};
    use bunting_origin::model::guardrail::{Guardrail, RollbackAction};
    use bunting_origin::model::rollout::GuardedRolloutSpec;
    use bunting_origin::monitor::{Monitor, MonitorOptions, Subject, health};
    use bunting_origin::serve::monitor_services;
    use bunting_origin::store::Actor;

    use crate::common::traffic;
    use crate::common::world::split;

    let (s, _guard) = common::postgres().await;
    let w = World::acme_by(&s, Actor::new("setup")).await;
    let f = w.flag(&s, "checkout").await;
    w.serve(&s, f, split(&[("on", 50.0), ("off", 50.0)])).await;
    let mut errors = MetricSpec::conversion("checkout-errors", "checkout_error");
    errors.higher_is_better = false;
    w.metric(&s, &errors).await;
    w.metric(&s, &MetricSpec::conversion("purchased", "purchase"))
        .await;
    // `alert`: a check that found harm would not stop the watch.
    let guardrail = Guardrail {
        metric: "checkout-errors".into(),
        tolerance: 0.0,
        action: RollbackAction::Alert,
    };
    let mut spec = ExperimentSpec::new("one-page", "checkout", "off", "purchased");
    spec.guardrails = vec![guardrail.clone()];
    let x = s.create_experiment(&w.actor, w.env, &spec).await.unwrap();
    let x = s.start_experiment(&w.actor, x.id, x.version).await.unwrap();
    // A later start: the guard's look has other bounds than the
    // experiment's.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut g = GuardedRolloutSpec::new("checkout", "off");
    g.guardrails.push(guardrail);
    let g = s.create_guarded_rollout(&w.actor, w.env, &g).await.unwrap();
    assert_ne!(x.started_at, g.started_at);
    let first_ms = [&x.started_at, &g.started_at]
        .iter()
        .map(|t| bunting_origin::store::aggregate::timestamp_ms(t.as_deref().unwrap()).unwrap())
        .max()
        .unwrap()
        + 1;

    let state = AppState::new(s.clone(), ServeConfig::default());
    let services = monitor_services(&state);
    let mut monitor = Monitor::new(MonitorOptions::default());
    let mut reference = Monitor::new(MonitorOptions::default());
    let metrics = vec![
        s.metric_by_key(w.project, "checkout-errors")
            .await
            .unwrap()
            .spec,
    ];
    let guard_scope = AnalysisScope {
        environment_id: w.env,
        flag: "checkout".into(),
        control: "off".into(),
        variants: Vec::new(),
        primary_metric: None,
        started_at: g.started_at.clone(),
        stopped_at: None,
    };
    let raw = AggregateOptions {
        raw: true,
        ..AggregateOptions::default()
    };
    // A monitor round, checked against the reference monitor fed with
    // raw-path looks in the same state; returns the raw guard look.
    let mut round = async |what: &str| -> ExperimentData {
        let checks = monitor.round(&services).await.unwrap();
        let raw_x = s
            .scope_data(&AnalysisScope::from(&x), &metrics, &raw)
            .await
            .unwrap();
        let raw_g = s.scope_data(&guard_scope, &metrics, &raw).await.unwrap();
        let mut expected = reference.observe_subject(&Subject::from(&x), &metrics, &raw_x);
        let guard_checks = reference.observe_subject(&Subject::from(&g), &metrics, &raw_g);
        expected.extend(guard_checks.iter().cloned());
        assert_eq!(checks, expected, "{what}");
        assert_eq!(checks.len(), 2, "{what}: one check per subject");
        let recorded = s.guarded_rollout(g.id).await.unwrap().health;
        let min_users = MonitorOptions::default().min_users_per_arm;
        assert_eq!(
            recorded,
            Some(health(&Subject::from(&g), &raw_g, &guard_checks, min_users)),
            "{what}"
        );
        raw_g
    };

    traffic::traffic(&s, w.env, first_ms, 0, 300, [20, 20]).await;
    round("first round").await;
    let first = cached_looks(&s, w.env).await;
    assert_eq!(first.len(), 2, "the experiment's and the guard's look");
    let mut widths: Vec<usize> = first
        .iter()
        .map(|(_, state)| state["cells"][0]["sums"].as_array().unwrap().len())
        .collect();
    widths.sort();
    assert_eq!(
        widths[1],
        2 * widths[0],
        "the experiment's look has both its metrics' sums, the guard's one"
    );
    // The results endpoint's look at the experiment: all its metrics, the
    // state the monitor's round left.
    let (all, served) = s.results_data(w.project, &x).await.unwrap();
    assert_eq!(all.len(), 2);
    let series = AggregateOptions {
        series: true,
        ..raw
    };
    assert_eq!(served, s.experiment_data(&x, &all, &series).await.unwrap());
    let keys = |looks: &[(String, serde_json::Value)]| -> Vec<String> {
        looks.iter().map(|(k, _)| k.clone()).collect()
    };
    assert_eq!(
        keys(&cached_looks(&s, w.env).await),
        keys(&first),
        "no state of the results' own"
    );

    // A full aggregation deletes cached looks unused for 30 days: this
    // one survives only if no later look aggregates in full.
    plant_sentinel(&s, w.env).await;
    // New users, and a late error of a user the first round saw.
    traffic::traffic(&s, w.env, first_ms, 300, 300, [20, 20]).await;
    s.insert_metric_events(&[MetricEvent {
        env_id: w.env,
        id: "late".into(),
        name: "checkout_error".into(),
        user_key: "off-1".into(),
        value: None,
        time_ms: first_ms + 60_000,
        received_ms: first_ms + 60_000,
        properties: None,
    }])
    .await
    .unwrap();
    let raw_g = round("second round").await;
    assert_eq!(raw_g.arms[0].users, 600);
    assert!(
        sentinel_kept(&s).await,
        "the second round aggregated nothing in full"
    );
    let second = cached_looks(&s, w.env).await;
    assert_eq!(keys(&second), keys(&first));
    for ((k1, s1), (k2, s2)) in first.iter().zip(&second) {
        assert_eq!(k1, k2);
        assert_ne!(
            s1["snapshot"], s2["snapshot"],
            "the monitor's look moved on"
        );
    }

    // The next round reads the cached sums: seven users too many in the
    // control cell of both monitor looks show in the recorded health, and
    // in the results, which read the experiment's.
    for (key, mut state) in second {
        let cell = state["cells"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["variant"] == "off")
            .unwrap();
        cell["n"] = (cell["n"].as_i64().unwrap() + 7).into();
        sqlx::query("UPDATE analysis_cache SET state = $1 WHERE key = $2")
            .bind(state.to_string())
            .bind(key)
            .execute(s.pool())
            .await
            .unwrap();
    }
    monitor.round(&services).await.unwrap();
    let h = s.guarded_rollout(g.id).await.unwrap().health.unwrap();
    assert_eq!(h.guardrails[0].control_users, 607, "{h:?}");
    let (_, served) = s.results_data(w.project, &x).await.unwrap();
    assert_eq!(served.arms[0].variant, "off");
    assert_eq!(served.arms[0].users, 607, "the look the monitor keeps");
    assert_eq!(keys(&cached_looks(&s, w.env).await), keys(&first));
}

/// `bunting serve`'s results refresh (`refresh::round`) looks at every
/// running experiment's results: opening them afterwards over HTTP updates
/// the refreshed look with the rows since — no full aggregation — and
/// serves what the raw path computes; after a stop, every round within the
/// final window (`Refresher::final_window`) takes the final results' look.
/// Drafts are left alone.
#[tokio::test]
async fn refreshed_results_open_without_a_full_aggregation() {
    use crate::common::traffic;

    let (s, _guard) = common::postgres().await;
    let w = World::acme(&s).await;
    w.flag(&s, "checkout").await;
    let errors = MetricSpec::conversion("checkout-errors", "checkout_error");
    w.metric(&s, &errors).await;
    let spec = |key: &str| ExperimentSpec::new(key, "checkout", "off", "checkout-errors");
    let x = s
        .create_experiment(&w.actor, w.env, &spec("t"))
        .await
        .unwrap();
    let x = s.start_experiment(&w.actor, x.id, x.version).await.unwrap();
    // A draft: never looked at.
    s.create_experiment(&w.actor, w.env, &spec("draft"))
        .await
        .unwrap();
    let first_ms = bunting_origin::store::aggregate::timestamp_ms(x.started_at.as_deref().unwrap())
        .unwrap()
        + 1;
    traffic::traffic(&s, w.env, first_ms, 0, 300, [7, 5]).await;

    let refresher = bunting_origin::refresh::Refresher::default();
    assert_eq!(refresher.round(&s).await.unwrap(), 1);
    let refreshed = cached_looks(&s, w.env).await;
    assert_eq!(refreshed.len(), 1, "the running experiment's results look");
    // A full aggregation deletes cached looks unused for 30 days: this one
    // survives only if opening the results aggregates nothing in full.
    plant_sentinel(&s, w.env).await;
    traffic::traffic(&s, w.env, first_ms, 300, 20, [3, 4]).await;

    let api = TestApp::root(s.clone());
    let (status, _, served) = api
        .get("/orgs/acme/projects/web/environments/production/experiments/t/results")
        .await;
    assert_eq!(status, 200, "{served}");
    let reference = raw_results(&s, &x, std::slice::from_ref(&errors)).await;
    assert_eq!(reference.arms.len(), 2);
    for (i, arm) in reference.arms.iter().enumerate() {
        assert_eq!(arm.users, 320);
        assert_eq!(served["arms"][i]["variant"], arm.variant.as_str());
        assert_eq!(served["arms"][i]["users"], arm.users);
    }
    let (_, data) = s.results_data(w.project, &x).await.unwrap();
    assert_eq!(data, reference);
    assert!(
        sentinel_kept(&s).await,
        "opening the results aggregated nothing in full"
    );
    let now = cached_looks(&s, w.env).await;
    assert_eq!(now.len(), 1, "the results used the refreshed look");
    assert_eq!(now[0].0, refreshed[0].0);
    assert_ne!(
        now[0].1["snapshot"], refreshed[0].1["snapshot"],
        "and moved it on"
    );

    // Stopped: the next round takes the final results' look (a window of
    // its own, fixed at the stop); later rounds within the final window
    // look again, finding nothing to aggregate in full; so does an origin
    // that has just started (the rounds keep no memory of their own).
    let x = s.stop_experiment(&w.actor, x.id, x.version).await.unwrap();
    assert_eq!(refresher.round(&s).await.unwrap(), 1);
    assert_eq!(cached_looks(&s, w.env).await.len(), 2, "and the final look");
    plant_sentinel(&s, w.env).await;
    assert_eq!(refresher.round(&s).await.unwrap(), 1);
    let restarted = bunting_origin::refresh::Refresher::default();
    assert_eq!(restarted.round(&s).await.unwrap(), 1);
    assert!(
        sentinel_kept(&s).await,
        "looks after the final one aggregate nothing in full"
    );
    assert_eq!(cached_looks(&s, w.env).await.len(), 2);
    let (status, _, stopped) = api
        .get("/orgs/acme/projects/web/environments/production/experiments/t/results")
        .await;
    assert_eq!(status, 200, "{stopped}");
    let (_, final_data) = s.results_data(w.project, &x).await.unwrap();
    let final_reference = raw_results(&s, &x, std::slice::from_ref(&errors)).await;
    assert_eq!(final_data, final_reference);
    for (i, arm) in final_reference.arms.iter().enumerate() {
        assert_eq!(stopped["arms"][i]["users"], arm.users);
    }
    assert!(
        sentinel_kept(&s).await,
        "the final results aggregated nothing in full"
    );
    // Stopped for longer than the final window: left alone.
    sqlx::query("UPDATE experiments SET stopped_at = '2020-01-01T00:00:00.000000Z' WHERE id = $1")
        .bind(x.id)
        .execute(s.pool())
        .await
        .unwrap();
    assert_eq!(refresher.round(&s).await.unwrap(), 0);
}

/// Origins sharing one database and schema take turns at the results
/// refresh (`Store::lead`): while one has the round, another skips it
/// (`round_if_leading` gives `None`) and looks at nothing; an origin of
/// another schema in the same database does not wait; the turn ends with
/// `Lead::end` or when the `Lead` is dropped.
#[tokio::test]
async fn origins_of_one_database_take_turns_at_the_refresh() {
    use bunting_origin::store::lead::Task;

    let (url, _guard) = common::postgres_schema().await;
    let (a, b) = (
        Store::open(&url).await.unwrap(),
        Store::open(&url).await.unwrap(),
    );
    let (elsewhere, _other_guard) = common::postgres().await;
    let w = World::acme(&a).await;
    w.flag(&a, "checkout").await;
    let errors = MetricSpec::conversion("checkout-errors", "checkout_error");
    w.metric(&a, &errors).await;
    let spec = ExperimentSpec::new("t", "checkout", "off", "checkout-errors");
    let x = a.create_experiment(&w.actor, w.env, &spec).await.unwrap();
    a.start_experiment(&w.actor, x.id, x.version).await.unwrap();

    let held = a
        .lead(Task::ResultsRefresh)
        .await
        .unwrap()
        .expect("a leads");
    assert!(b.lead(Task::ResultsRefresh).await.unwrap().is_none());
    let refresher = bunting_origin::refresh::Refresher::default();
    assert_eq!(refresher.round_if_leading(&b).await.unwrap(), None);
    assert!(
        cached_looks(&b, w.env).await.is_empty(),
        "b looked at nothing"
    );
    let other = elsewhere.lead(Task::ResultsRefresh).await.unwrap();
    assert!(other.is_some(), "another schema does not wait");
    other.unwrap().end().await.unwrap();

    held.end().await.unwrap();
    assert_eq!(refresher.round_if_leading(&b).await.unwrap(), Some(1));
    assert_eq!(cached_looks(&b, w.env).await.len(), 1);
    // A turn dropped without `end` (a cancelled round) is given up too,
    // once the pool has rolled its transaction back (in the background).
    drop(
        b.lead(Task::ResultsRefresh)
            .await
            .unwrap()
            .expect("b leads"),
    );
    let mut again = None;
    for _ in 0..100 {
        again = a.lead(Task::ResultsRefresh).await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the dropped turn was given up within 2 s");
}
