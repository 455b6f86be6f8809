//! The per-user exposure rollup (`exposure_users`, maintained at ingest)
//! against recomputation, on both backends, with seeded random data:
//!
//! * after batches delivered out of order, retried and overlapping, the
//!   stored rollup equals `events::rollup` of every distinct stored
//!   exposure (merges are order-independent and idempotent), also with
//!   rebuilds running during the deliveries;
//! * the analysis through the rollup (one range and several key ranges)
//!   equals the analysis of the raw exposures for experiments started and
//!   stopped at random times (users exposed before the start, multi-arm
//!   users switching after the stop, ties at the same millisecond).

use bunting_origin::model::metric::{MetricKind, MetricSpec};
use bunting_origin::store::aggregate::{AggregateOptions, AnalysisScope};
use bunting_origin::store::events::rollup;
use bunting_origin::store::{Exposure, MetricEvent, Store};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::common::world::World;

both!(
    rollup_equals_recomputation,
    rebuilds_during_ingestion_lose_nothing,
    concurrent_deliveries_keep_the_rollup_exact,
    rollup_analysis_equals_raw_analysis
);

/// The environment id of the rollup-only tests (the store keys events by
/// it and does not look it up).
const ENV: i64 = 1;
const HOUR: i64 = 3_600_000;
/// 2025-11-25T00:00:00Z.
const T: i64 = 1_764_028_800_000;

/// `users` users with 1–6 exposures each over two days to variants a/b/c
/// of flags `f` and `g` (most users stay on one variant; ties at the same
/// millisecond happen), shuffled.
fn exposures(rng: &mut StdRng, users: usize, env_id: i64) -> Vec<Exposure> {
    let mut out = Vec::new();
    for u in 0..users {
        let home = ["a", "b", "c"][rng.random_range(0..3)];
        for k in 0..rng.random_range(1..=6) {
            let switch = rng.random_bool(0.08);
            let variant = if switch {
                ["a", "b", "c"][rng.random_range(0..3)]
            } else {
                home
            };
            // Coarse times (whole minutes) so that ties occur.
            let t = T + rng.random_range(0..48 * 60) * 60_000;
            let flag = if rng.random_bool(0.85) { "f" } else { "g" };
            out.push(Exposure {
                env_id,
                id: format!("x-{u}-{k}"),
                flag_key: flag.into(),
                variant: variant.into(),
                user_key: format!("{:016x}", (u as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                time_ms: t,
                snapshot_version: None,
                rule_id: None,
                reason: Some("SPLIT".into()),
                country: None,
                device_type: None,
                received_ms: t,
            });
        }
    }
    out.shuffle(rng);
    out
}

/// Delivers `rows` in random batches, each retried with probability ½ and
/// overlapping the previous one.
async fn deliver(s: &Store, rng: &mut StdRng, rows: &[Exposure]) {
    let mut i = 0;
    while i < rows.len() {
        let n = rng.random_range(1..=400).min(rows.len() - i);
        let start = i.saturating_sub(rng.random_range(0..20));
        let batch = &rows[start..i + n];
        s.insert_exposures(batch).await.unwrap();
        if rng.random_bool(0.5) {
            s.insert_exposures(batch).await.unwrap();
        }
        i += n;
    }
}

fn sorted(mut v: Vec<bunting_origin::store::events::ExposureUser>) -> Vec<String> {
    v.sort_by(|a, b| (&a.flag_key, &a.user_key).cmp(&(&b.flag_key, &b.user_key)));
    v.into_iter().map(|u| format!("{u:?}")).collect()
}

async fn rollup_equals_recomputation(s: Store) {
    let mut rng = StdRng::seed_from_u64(7);
    let rows = exposures(&mut rng, 1_500, ENV);
    deliver(&s, &mut rng, &rows).await;
    let stored = s.exposure_users_of(ENV).await.unwrap();
    assert_eq!(sorted(stored.clone()), sorted(rollup(&rows)));
    // Several arms and same-millisecond ties are in the data.
    assert!(stored.iter().filter(|u| u.vmin != u.vmax).count() > 50);
    // Rebuilding from the raw exposures gives the same rollup.
    let rows_n = s.rebuild_exposure_users().await.unwrap();
    assert_eq!(rows_n as usize, stored.len());
    assert_eq!(
        sorted(s.exposure_users_of(ENV).await.unwrap()),
        sorted(stored.clone())
    );
    // Redelivering everything in another order changes nothing.
    let mut again = rows.clone();
    again.shuffle(&mut rng);
    deliver(&s, &mut rng, &again).await;
    assert_eq!(
        sorted(s.exposure_users_of(ENV).await.unwrap()),
        sorted(stored)
    );
}

async fn rebuilds_during_ingestion_lose_nothing(s: Store) {
    let mut rng = StdRng::seed_from_u64(23);
    let rows = exposures(&mut rng, 1_500, ENV);
    let ingest = {
        let (s, rows) = (s.clone(), rows.clone());
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(29);
            deliver(&s, &mut rng, &rows).await;
        })
    };
    let mut rebuilds = 0;
    while !ingest.is_finished() || rebuilds < 3 {
        s.rebuild_exposure_users().await.unwrap();
        rebuilds += 1;
        tokio::task::yield_now().await;
    }
    ingest.await.unwrap();
    assert_eq!(
        sorted(s.exposure_users_of(ENV).await.unwrap()),
        sorted(rollup(&rows))
    );
}

/// Three writers deliver the same exposures at once, each in its own order
/// and batching (and retrying) them its own way: every user's first
/// exposures race to create and widen their rollup row in concurrent
/// transactions, ids race each other's inserts (on PostgreSQL a writer
/// waits for the other's commit, fails on the duplicate and writes its
/// group again skipping it; writers holding overlapping ids in opposite
/// orders deadlock, and the aborted one writes its group again), and most
/// later batches repeat rows other writers committed. Every delivery
/// succeeds, the rollup equals its recomputation and every exposure is
/// stored once.
async fn concurrent_deliveries_keep_the_rollup_exact(s: Store) {
    let mut rng = StdRng::seed_from_u64(31);
    let rows = exposures(&mut rng, 1_000, ENV);
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let (s, mut rows) = (s.clone(), rows.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(41 + w);
                rows.shuffle(&mut rng);
                deliver(&s, &mut rng, &rows).await;
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(
        sorted(s.exposure_users_of(ENV).await.unwrap()),
        sorted(rollup(&rows))
    );
    assert_eq!(s.count_exposures(ENV).await.unwrap() as usize, rows.len());
}

async fn rollup_analysis_equals_raw_analysis(s: Store) {
    let w = World::acme(&s).await;
    w.flag(&s, "f").await;
    let mut rng = StdRng::seed_from_u64(11);
    let rows = exposures(&mut rng, 1_200, w.env);
    deliver(&s, &mut rng, &rows).await;
    let users: Vec<String> = rows.iter().map(|e| e.user_key.clone()).collect();
    let names = ["purchase", "visit"];
    let events: Vec<MetricEvent> = (0..3_000)
        .map(|i| {
            let t = T + rng.random_range(-24..72) * HOUR + rng.random_range(0..HOUR);
            MetricEvent {
                env_id: w.env,
                id: format!("e-{i}"),
                name: names[rng.random_range(0..2)].into(),
                user_key: users[rng.random_range(0..users.len())].clone(),
                value: rng
                    .random_bool(0.8)
                    .then(|| rng.random_range(0..200) as f64),
                time_ms: t,
                received_ms: t,
                properties: None,
            }
        })
        .collect();
    s.insert_metric_events(&events).await.unwrap();

    let mut revenue = MetricSpec::conversion("revenue", "purchase");
    revenue.kind = MetricKind::Mean;
    revenue.cap = Some(150.0);
    revenue.window_seconds = Some(6 * 3600);
    let mut per_visit = MetricSpec::conversion("per-visit", "purchase");
    per_visit.kind = MetricKind::Ratio;
    per_visit.denominator_event = Some("visit".into());
    let metrics = [
        MetricSpec::conversion("purchased", "purchase"),
        revenue,
        per_visit,
    ];
    let stamp = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let windows = [
        (None, None),
        (Some(T + 10 * HOUR), None),
        (Some(T + 5 * HOUR), Some(T + 30 * HOUR)),
        (None, Some(T + 20 * HOUR)),
        (Some(T + 47 * HOUR), Some(T + 48 * HOUR)),
    ];
    for (from, until) in windows {
        let scope = AnalysisScope {
            environment_id: w.env,
            flag: "f".into(),
            control: "a".into(),
            variants: vec!["b".into(), "c".into()],
            primary_metric: Some("revenue".into()),
            started_at: from.map(stamp),
            stopped_at: until.map(stamp),
        };
        let o = AggregateOptions {
            series: true,
            ..AggregateOptions::default()
        };
        let raw = s
            .scope_data(&scope, &metrics, &AggregateOptions { raw: true, ..o })
            .await
            .unwrap();
        let fast = s.scope_data(&scope, &metrics, &o).await.unwrap();
        let cut = AggregateOptions {
            partitions: Some(4),
            ..o
        };
        let ranges = s.scope_data(&scope, &metrics, &cut).await.unwrap();
        let users: u64 = raw.arms.iter().map(|a| a.users).sum();
        assert!(
            users > 0 || from == Some(T + 47 * HOUR),
            "{from:?}..{until:?}"
        );
        // Float sums may be added in another order: compare with a
        // relative tolerance, everything else exactly.
        for other in [&fast, &ranges] {
            assert_eq!(
                other.multi_arm_users, raw.multi_arm_users,
                "{from:?}..{until:?}"
            );
            assert_eq!(other.series.len(), raw.series.len());
            for (x, y) in other.arms.iter().zip(&raw.arms) {
                assert_eq!((&x.variant, x.users), (&y.variant, y.users));
                for (k, m) in &x.metrics {
                    let r = &y.metrics[k];
                    assert_eq!((m.n, m.conversions), (r.n, r.conversions), "{k}");
                    for (a, b) in [
                        (m.sum, r.sum),
                        (m.sum_sq, r.sum_sq),
                        (m.den_sum.unwrap_or(0.0), r.den_sum.unwrap_or(0.0)),
                        (m.cross_sum.unwrap_or(0.0), r.cross_sum.unwrap_or(0.0)),
                        (m.pre_sum.unwrap_or(0.0), r.pre_sum.unwrap_or(0.0)),
                        (m.pre_cross.unwrap_or(0.0), r.pre_cross.unwrap_or(0.0)),
                    ] {
                        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{k}: {a} vs {b}");
                    }
                }
            }
        }
    }
}

/// On PostgreSQL ingestion skips merging users whose rollup row it
/// committed earlier already covers the batch (migration 0019): rows that
/// shrink afterwards — exposures deleted and the rollup rebuilt, the
/// rollup truncated, here by another store on the same database as
/// another process would — must not be skipped on that memory. Each
/// delivery after a shrink is merged again, and the rollup equals its
/// recomputation from the stored exposures every time.
#[tokio::test]
async fn postgres_shrunk_rollup_rows_are_merged_again() {
    let (url, _guard) = crate::common::postgres_schema().await;
    let a = Store::open(&url).await.unwrap();
    let b = Store::open(&url).await.unwrap();
    let mut rng = StdRng::seed_from_u64(53);
    let rows = exposures(&mut rng, 400, ENV);
    let exact = |rows: &[Exposure]| sorted(rollup(rows));
    // Delivered twice: the second time every user is covered and skipped.
    deliver(&a, &mut rng, &rows).await;
    deliver(&a, &mut rng, &rows).await;
    assert_eq!(
        sorted(a.exposure_users_of(ENV).await.unwrap()),
        exact(&rows)
    );

    // Another store deletes every exposure and rebuilds: the rollup is
    // empty; the same exposures delivered again must be merged again.
    sqlx::query("DELETE FROM exposures")
        .execute(b.pool())
        .await
        .unwrap();
    b.rebuild_exposure_users().await.unwrap();
    assert!(a.exposure_users_of(ENV).await.unwrap().is_empty());
    let half = &rows[..rows.len() / 2];
    deliver(&a, &mut rng, half).await;
    assert_eq!(sorted(a.exposure_users_of(ENV).await.unwrap()), exact(half));

    // The same after a TRUNCATE of the rollup and a rebuild of it.
    sqlx::query("TRUNCATE exposure_users")
        .execute(b.pool())
        .await
        .unwrap();
    deliver(&a, &mut rng, half).await;
    b.rebuild_exposure_users().await.unwrap();
    deliver(&a, &mut rng, &rows).await;
    assert_eq!(
        sorted(a.exposure_users_of(ENV).await.unwrap()),
        exact(&rows)
    );

    // And when the rollup shrinks through the store that remembers.
    sqlx::query("DELETE FROM exposures")
        .execute(a.pool())
        .await
        .unwrap();
    a.rebuild_exposure_users().await.unwrap();
    deliver(&a, &mut rng, half).await;
    assert_eq!(sorted(a.exposure_users_of(ENV).await.unwrap()), exact(half));
    a.pool().close().await;
    b.pool().close().await;
}
