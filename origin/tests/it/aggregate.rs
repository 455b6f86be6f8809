//! Per-arm aggregation of an experiment's data (`Store::experiment_data`)
//! on both backends, against hand-computed figures: conversion, capped
//! mean, sum, ratio; attribution window boundaries; multi-arm users;
//! CUPED pre-period sums; start/stop and option bounds; the cumulative
//! daily series; an empty experiment. Every figure is checked on three
//! paths: the per-user rollup (default), the raw exposures, and the rollup
//! cut into key ranges.

use bunting_origin::model::experiment::{ExperimentRecord, ExperimentSpec};
use bunting_origin::model::metric::{MetricKind, MetricSpec};
use bunting_origin::store::aggregate::{AggregateOptions, ExperimentData, MetricAgg};
use bunting_origin::store::{Exposure, MetricEvent, Store};

use crate::common::world::World;

both!(
    metric_kinds_exactly,
    attribution_window_boundaries,
    multi_arm_users_stay_in_their_first_arm,
    cuped_pre_period,
    start_stop_and_option_bounds,
    cumulative_daily_series,
    empty_experiment,
);

const ENV: &str = "acme/web/production";
const DAY: i64 = 86_400_000;
/// 2025-11-25T00:00:00Z.
const T: i64 = 1_764_028_800_000;
const HOUR: i64 = 3_600_000;

/// Project, environment, flag `checkout` (on/off) and a draft experiment
/// on it (control `off`, primary `purchased`).
async fn setup(s: &Store) -> ExperimentRecord {
    let w = World::acme(s).await;
    w.flag(s, "checkout").await;
    w.metric(s, &MetricSpec::conversion("purchased", "purchase"))
        .await;
    s.create_experiment(
        &w.actor,
        w.env,
        &ExperimentSpec::new("t", "checkout", "off", "purchased"),
    )
    .await
    .unwrap()
}

/// The id of environment `ENV`.
async fn env_id(s: &Store) -> i64 {
    s.environment_ids(&[ENV.into()]).await.unwrap()[ENV]
}

async fn expose(s: &Store, rows: &[(&str, &str, i64)]) {
    let env_id = env_id(s).await;
    let rows: Vec<Exposure> = rows
        .iter()
        .map(|&(user, variant, t)| Exposure {
            env_id,
            id: format!("{user}-{variant}-{t}"),
            flag_key: "checkout".into(),
            variant: variant.into(),
            user_key: user.into(),
            time_ms: t,
            snapshot_version: None,
            rule_id: None,
            reason: None,
            country: None,
            device_type: None,
            received_ms: t,
        })
        .collect();
    s.insert_exposures(&rows).await.unwrap();
}

async fn events(s: &Store, rows: &[(&str, &str, Option<f64>, i64)]) {
    let env_id = env_id(s).await;
    let rows: Vec<MetricEvent> = rows
        .iter()
        .enumerate()
        .map(|(i, &(name, user, value, t))| MetricEvent {
            env_id,
            id: format!("ev-{i}"),
            name: name.into(),
            user_key: user.into(),
            value,
            time_ms: t,
            received_ms: t,
            properties: None,
        })
        .collect();
    s.insert_metric_events(&rows).await.unwrap();
}

/// The experiment's data by the default path (the per-user rollup), after
/// checking that the reference path (every raw exposure) and the rollup cut
/// into three key ranges aggregated concurrently give exactly the same.
async fn data(
    s: &Store,
    e: &ExperimentRecord,
    metrics: &[MetricSpec],
    o: &AggregateOptions,
) -> ExperimentData {
    let d = s.experiment_data(e, metrics, o).await.unwrap();
    let raw = AggregateOptions { raw: true, ..*o };
    assert_eq!(s.experiment_data(e, metrics, &raw).await.unwrap(), d, "raw");
    let cut = AggregateOptions {
        partitions: Some(3),
        ..*o
    };
    assert_eq!(
        s.experiment_data(e, metrics, &cut).await.unwrap(),
        d,
        "3 ranges"
    );
    d
}

fn metric(key: &str, kind: MetricKind, event: &str) -> MetricSpec {
    let mut m = MetricSpec::conversion(key, event);
    m.kind = kind;
    m
}

fn arm<'a>(d: &'a ExperimentData, variant: &str) -> &'a bunting_origin::store::aggregate::ArmData {
    d.arms.iter().find(|a| a.variant == variant).unwrap()
}

fn agg<'a>(d: &'a ExperimentData, variant: &str, metric: &str) -> &'a MetricAgg {
    &arm(d, variant).metrics[metric]
}

async fn metric_kinds_exactly(s: Store) {
    let e = setup(&s).await;
    // off: a (t), b (t+1h), c (t+2h); on: d (t), f (t)
    expose(
        &s,
        &[
            ("a", "off", T),
            ("a", "off", T + 5 * HOUR),
            ("b", "off", T + HOUR),
            ("c", "off", T + 2 * HOUR),
            ("d", "on", T),
            ("f", "on", T),
        ],
    )
    .await;
    events(
        &s,
        &[
            // purchases (value = revenue)
            ("purchase", "a", Some(30.0), T + HOUR),
            ("purchase", "a", Some(50.0), T + 2 * HOUR), // a: 80 → capped 60
            ("purchase", "b", None, T + 2 * HOUR),       // b: NULL → 0, converts
            ("purchase", "d", Some(10.0), T + HOUR),     // d: 10
            ("purchase", "d", Some(15.0), T + 3 * HOUR), // d: 25
            // sessions (ratio denominator), pageviews (numerator)
            ("session", "a", None, T + HOUR),
            ("session", "a", None, T + 2 * HOUR),
            ("pageview", "a", Some(3.0), T + HOUR),
            ("pageview", "a", None, T + HOUR), // counts 1 → a: 4 / 2
            ("session", "c", Some(2.0), T + 3 * HOUR), // c: 0 / 2
            ("session", "f", None, T + HOUR),
            ("pageview", "f", Some(5.0), T + HOUR), // f: 5 / 1
            ("other", "a", Some(1000.0), T + HOUR), // unrelated
        ],
    )
    .await;
    let conv = MetricSpec::conversion("purchased", "purchase");
    let mut mean = metric("revenue", MetricKind::Mean, "purchase");
    mean.cap = Some(60.0);
    let sum = metric("revenue_total", MetricKind::Sum, "purchase");
    let mut ratio = metric("pages_per_session", MetricKind::Ratio, "pageview");
    ratio.denominator_event = Some("session".into());
    let d = data(
        &s,
        &e,
        &[conv, mean, sum, ratio],
        &AggregateOptions::default(),
    )
    .await;
    assert_eq!(d.environment, ENV);
    assert_eq!(
        d.arms
            .iter()
            .map(|a| (a.variant.as_str(), a.users))
            .collect::<Vec<_>>(),
        [("off", 3), ("on", 2)]
    );
    assert_eq!(d.multi_arm_users, 0);

    // conversion: off a, b convert; on d.
    let c = agg(&d, "off", "purchased");
    assert_eq!(
        (c.n, c.sum, c.sum_sq, c.conversions),
        (3, 2.0, 2.0, Some(2))
    );
    assert_eq!((c.den_sum, c.pre_sum), (None, Some(0.0)));
    let c = agg(&d, "on", "purchased");
    assert_eq!(
        (c.n, c.sum, c.sum_sq, c.conversions),
        (2, 1.0, 1.0, Some(1))
    );

    // mean capped at 60: off a 60, b 0, c 0; on d 25, f 0.
    let m = agg(&d, "off", "revenue");
    assert_eq!(
        (m.n, m.sum, m.sum_sq, m.conversions),
        (3, 60.0, 3600.0, None)
    );
    let m = agg(&d, "on", "revenue");
    assert_eq!((m.n, m.sum, m.sum_sq), (2, 25.0, 625.0));

    // sum, uncapped: off a 80; on d 25.
    let m = agg(&d, "off", "revenue_total");
    assert_eq!((m.sum, m.sum_sq), (80.0, 6400.0));
    let m = agg(&d, "on", "revenue_total");
    assert_eq!((m.sum, m.sum_sq), (25.0, 625.0));

    // ratio: off a 4/2, b 0/0, c 0/2; on d 0/0, f 5/1.
    let r = agg(&d, "off", "pages_per_session");
    assert_eq!((r.n, r.sum, r.sum_sq), (3, 4.0, 16.0));
    assert_eq!(
        (r.den_sum, r.den_sum_sq, r.cross_sum),
        (Some(4.0), Some(8.0), Some(8.0))
    );
    assert_eq!((r.pre_sum, r.conversions), (None, None));
    let r = agg(&d, "on", "pages_per_session");
    assert_eq!((r.sum, r.sum_sq), (5.0, 25.0));
    assert_eq!(
        (r.den_sum, r.den_sum_sq, r.cross_sum),
        (Some(1.0), Some(1.0), Some(5.0))
    );
}

async fn attribution_window_boundaries(s: Store) {
    let e = setup(&s).await;
    expose(
        &s,
        &[("a", "off", T), ("a", "off", T + 10 * HOUR), ("b", "on", T)],
    )
    .await;
    let mut m = metric("revenue", MetricKind::Sum, "purchase");
    m.window_seconds = Some(3600); // one hour
    events(
        &s,
        &[
            ("purchase", "a", Some(1.0), T - 1), // before first exposure: out
            ("purchase", "a", Some(2.0), T),     // at first exposure: in
            ("purchase", "a", Some(4.0), T + HOUR - 1), // last ms of the window: in
            ("purchase", "a", Some(8.0), T + HOUR), // window end: out
            ("purchase", "a", Some(16.0), T + 10 * HOUR), // a later exposure opens nothing
            ("purchase", "b", Some(32.0), T + HOUR + 1),
        ],
    )
    .await;
    let d = data(&s, &e, &[m], &AggregateOptions::default()).await;
    let a = agg(&d, "off", "revenue");
    assert_eq!((a.n, a.sum, a.sum_sq), (1, 6.0, 36.0));
    // The pre-period [T - 1h, T) holds the 1.0.
    assert_eq!(
        (a.pre_sum, a.pre_sum_sq, a.pre_cross),
        (Some(1.0), Some(1.0), Some(6.0))
    );
    let b = agg(&d, "on", "revenue");
    assert_eq!((b.n, b.sum, b.sum_sq), (1, 0.0, 0.0));
}

async fn multi_arm_users_stay_in_their_first_arm(s: Store) {
    let e = setup(&s).await;
    expose(
        &s,
        &[
            ("a", "on", T + 5),
            ("a", "off", T + 1), // first: a is in off
            ("a", "on", T + 9),
            ("b", "on", T),
            ("b", "on", T + 1),
            ("c", "on", T),
            ("c", "off", T), // same millisecond: the smaller name (off)
        ],
    )
    .await;
    events(
        &s,
        &[
            ("purchase", "a", None, T + 7),
            ("purchase", "c", None, T + 7),
        ],
    )
    .await;
    let d = data(
        &s,
        &e,
        &[MetricSpec::conversion("purchased", "purchase")],
        &AggregateOptions::default(),
    )
    .await;
    assert_eq!(d.multi_arm_users, 2);
    assert_eq!((arm(&d, "off").users, arm(&d, "on").users), (2, 1));
    assert_eq!(agg(&d, "off", "purchased").conversions, Some(2));
    assert_eq!(agg(&d, "on", "purchased").conversions, Some(0));
}

async fn cuped_pre_period(s: Store) {
    let e = setup(&s).await;
    expose(&s, &[("a", "off", T), ("b", "off", T), ("c", "on", T)]).await;
    let mut m = metric("revenue", MetricKind::Mean, "purchase");
    m.window_seconds = Some(86_400);
    m.cap = Some(100.0);
    events(
        &s,
        &[
            ("purchase", "a", Some(3.0), T - DAY), // pre: first ms of the pre-window
            ("purchase", "a", Some(4.0), T - 1),   // pre
            ("purchase", "a", Some(5.0), T + 1),   // post
            ("purchase", "a", Some(99.0), T - DAY - 1), // before the pre-window
            ("purchase", "b", Some(500.0), T - HOUR), // pre, capped to 100
            ("purchase", "b", Some(2.0), T + HOUR),
            ("purchase", "c", Some(6.0), T - HOUR),
        ],
    )
    .await;
    let mut conv = MetricSpec::conversion("purchased", "purchase");
    conv.window_seconds = Some(86_400);
    let d = data(&s, &e, &[m, conv], &AggregateOptions::default()).await;
    // off: a x=7 y=5, b x=100 y=2.
    let a = agg(&d, "off", "revenue");
    assert_eq!((a.sum, a.sum_sq), (7.0, 29.0));
    assert_eq!(
        (a.pre_sum, a.pre_sum_sq, a.pre_cross),
        (Some(107.0), Some(10_049.0), Some(235.0))
    );
    // on: c x=6 y=0.
    let c = agg(&d, "on", "revenue");
    assert_eq!(
        (c.sum, c.pre_sum, c.pre_sum_sq, c.pre_cross),
        (0.0, Some(6.0), Some(36.0), Some(0.0))
    );
    // conversion pre-period: off a, b converted before (x=1) and after (y=1).
    let p = agg(&d, "off", "purchased");
    assert_eq!(
        (p.conversions, p.pre_sum, p.pre_sum_sq, p.pre_cross),
        (Some(2), Some(2.0), Some(2.0), Some(2.0))
    );
    let p = agg(&d, "on", "purchased");
    assert_eq!(
        (p.conversions, p.pre_sum, p.pre_cross),
        (Some(0), Some(1.0), Some(0.0))
    );
}

async fn start_stop_and_option_bounds(s: Store) {
    let mut e = setup(&s).await;
    // Exposures at T + 0h … T + 5h, one user each; u2 also before the start.
    let rows: Vec<(String, &str, i64)> = (0..6)
        .map(|h| {
            (
                format!("u{h}"),
                if h % 2 == 0 { "off" } else { "on" },
                T + h * HOUR,
            )
        })
        .chain([("u2".to_string(), "on", T - HOUR)])
        .collect();
    let rows: Vec<(&str, &str, i64)> = rows.iter().map(|(u, v, t)| (u.as_str(), *v, *t)).collect();
    expose(&s, &rows).await;
    events(&s, &[("purchase", "u2", None, T - HOUR + 1)]).await;
    let conv = MetricSpec::conversion("purchased", "purchase");
    // Started at T + 1h 30 min, stopped at T + 4h: u2, u3, u4.
    e.started_at = Some("2025-11-25T01:30:00.000000Z".into());
    e.stopped_at = Some("2025-11-25T04:00:00.000000Z".into());
    let d = data(
        &s,
        &e,
        std::slice::from_ref(&conv),
        &AggregateOptions::default(),
    )
    .await;
    assert_eq!(
        (d.from_ms, d.until_ms),
        (Some(T + 3 * HOUR / 2), Some(T + 4 * HOUR))
    );
    assert_eq!((arm(&d, "off").users, arm(&d, "on").users), (2, 1));
    // u2's first exposure in the window is T + 2h (off); its purchase at
    // T - 1h + 1 ms is before it, and its earlier "on" exposure is outside
    // the window: not a multi-arm user.
    assert_eq!(agg(&d, "off", "purchased").conversions, Some(0));
    assert_eq!(d.multi_arm_users, 0);
    // Options narrow further (inclusive bounds): T + 3h ..= T + 3h → u3.
    let o = AggregateOptions {
        from_ms: Some(T + 3 * HOUR),
        until_ms: Some(T + 3 * HOUR),
        ..AggregateOptions::default()
    };
    let d = data(&s, &e, &[conv], &o).await;
    assert_eq!(
        (d.from_ms, d.until_ms),
        (Some(T + 3 * HOUR), Some(T + 3 * HOUR))
    );
    assert_eq!((arm(&d, "off").users, arm(&d, "on").users), (0, 1));
    // The empty arm is still reported, control first, with zero figures.
    assert_eq!(d.arms[0].variant, "off");
    let z = agg(&d, "off", "purchased");
    assert_eq!(
        (z.n, z.sum, z.conversions, z.pre_sum),
        (0, 0.0, Some(0), Some(0.0))
    );
}

async fn cumulative_daily_series(s: Store) {
    let mut e = setup(&s).await;
    // Day 1 (2025-11-25): off a, on b; day 2: off c; day 4: on d, x (arm
    // "x" is not in the flag but seen in exposures); day 3 has nobody.
    expose(
        &s,
        &[
            ("a", "off", T + HOUR),
            ("b", "on", T + 23 * HOUR),
            ("c", "off", T + DAY),
            ("d", "on", T + 3 * DAY + 1),
            ("x", "x", T + 3 * DAY + 2),
        ],
    )
    .await;
    events(
        &s,
        &[
            ("purchase", "a", Some(2.0), T + 2 * HOUR),
            ("purchase", "b", Some(3.0), T + 2 * DAY), // after midnight: still b's day
            ("purchase", "c", Some(5.0), T + DAY + 1),
            ("purchase", "d", Some(7.0), T + 3 * DAY + 2),
        ],
    )
    .await;
    e.spec.primary_metric = "revenue".into();
    e.spec.allocation = [
        ("off".to_string(), 1.0),
        ("on".to_string(), 1.0),
        ("z".to_string(), 0.0),
    ]
    .into_iter()
    .collect();
    let conv = MetricSpec::conversion("purchased", "purchase");
    let revenue = metric("revenue", MetricKind::Sum, "purchase");
    let d = data(
        &s,
        &e,
        &[conv, revenue],
        &AggregateOptions {
            series: true,
            ..AggregateOptions::default()
        },
    )
    .await;
    assert_eq!(
        d.arms
            .iter()
            .map(|a| (a.variant.as_str(), a.users))
            .collect::<Vec<_>>(),
        [("off", 2), ("on", 2), ("x", 1), ("z", 0)]
    );
    let days: Vec<&str> = d.series.iter().map(|p| p.day.as_str()).collect();
    assert_eq!(days, ["2025-11-25", "2025-11-26", "2025-11-28"]);
    let at = |i: usize, v: &str| {
        let a = d.series[i].arms[v];
        (a.users, a.sum)
    };
    assert_eq!(
        [at(0, "off"), at(0, "on"), at(0, "x"), at(0, "z")],
        [(1, 2.0), (1, 3.0), (0, 0.0), (0, 0.0)]
    );
    assert_eq!(
        [at(1, "off"), at(1, "on"), at(1, "x")],
        [(2, 7.0), (1, 3.0), (0, 0.0)]
    );
    assert_eq!(
        [at(2, "off"), at(2, "on"), at(2, "x")],
        [(2, 7.0), (2, 10.0), (1, 0.0)]
    );
    // The last point equals the totals.
    assert_eq!(agg(&d, "on", "revenue").sum, 10.0);
    // Without the option: no series.
    let d = data(&s, &e, &[], &AggregateOptions::default()).await;
    assert!(d.series.is_empty());
    assert_eq!(arm(&d, "off").users, 2);
    assert!(arm(&d, "off").metrics.is_empty());
}

async fn empty_experiment(s: Store) {
    let e = setup(&s).await;
    let conv = MetricSpec::conversion("purchased", "purchase");
    let mut ratio = metric("ppv", MetricKind::Ratio, "pageview");
    ratio.denominator_event = Some("session".into());
    let d = data(
        &s,
        &e,
        &[conv, ratio],
        &AggregateOptions {
            series: true,
            ..AggregateOptions::default()
        },
    )
    .await;
    assert_eq!(
        d.arms.len(),
        1,
        "the control, with no allocation and no exposure"
    );
    assert_eq!(d.arms[0].variant, "off");
    assert_eq!(d.arms[0].users, 0);
    assert_eq!(d.multi_arm_users, 0);
    assert!(d.series.is_empty());
    let r = &d.arms[0].metrics["ppv"];
    assert_eq!(
        (r.n, r.sum, r.den_sum, r.cross_sum),
        (0, 0.0, Some(0.0), Some(0.0))
    );
    assert_eq!(d.arms[0].metrics["purchased"].conversions, Some(0));
    assert_eq!((d.from_ms, d.until_ms), (None, None));
}
