//! Exposures to the flag `checkout` and metric events, stored as the edge
//! would have delivered them.

use bunting_origin::store::{Exposure, MetricEvent, Store};

/// A user's exposure to `variant` of `checkout` at `t` in environment
/// `env_id`.
pub(crate) fn exposure(env_id: i64, user: &str, variant: &str, t: i64) -> Exposure {
    Exposure {
        env_id,
        id: format!("x-{user}"),
        flag_key: "checkout".into(),
        variant: variant.to_string(),
        user_key: user.to_string(),
        time_ms: t,
        snapshot_version: Some(1),
        rule_id: None,
        reason: Some("SPLIT".into()),
        country: None,
        device_type: None,
        received_ms: t,
    }
}

/// `users` new users per arm of `checkout` (`off`, `on`; user `i` is
/// `{variant}-{i}`, numbered from `from`), user `i` exposed at `first_ms +
/// i`; every `err_every[arm]`-th user errs (a `checkout_error` 10 ms
/// later; 0: none).
pub(crate) async fn traffic(
    store: &Store,
    env_id: i64,
    first_ms: i64,
    from: u64,
    users: u64,
    err_every: [u64; 2],
) {
    let mut exposures = Vec::new();
    let mut events = Vec::new();
    for (arm, variant) in ["off", "on"].iter().enumerate() {
        for i in from..from + users {
            let user = format!("{variant}-{i}");
            let t = first_ms + i as i64;
            exposures.push(exposure(env_id, &user, variant, t));
            if err_every[arm] > 0 && i % err_every[arm] == 0 {
                events.push(MetricEvent {
                    env_id,
                    id: format!("e-{user}"),
                    name: "checkout_error".into(),
                    user_key: user,
                    value: None,
                    time_ms: t + 10,
                    received_ms: t + 10,
                    properties: None,
                });
            }
        }
    }
    store.insert_exposures(&exposures).await.unwrap();
    store.insert_metric_events(&events).await.unwrap();
}
