//! Keeps running experiments' results warm on PostgreSQL.
//!
//! A look at an experiment's results ([`Store::results_data`], the results
//! endpoint) is incremental on PostgreSQL: it updates the sums of the
//! previous look of the same configuration with the users whose rows
//! arrived since (`store::results_cache`). Only a look without a previous
//! one aggregates every user, which takes seconds for millions of them. So
//! [`spawn`] looks at every running experiment's results every `every`
//! (`bunting serve --results-refresh-seconds`, default 60): the first look
//! happens within a round of the start, while the experiment has few users,
//! and every later one — a round's or a person's opening the results —
//! costs the rows ingested since the previous round, as GrowthBook's
//! scheduled updates keep its results, but exact and up to the moment.
//!
//! On SQLite every look aggregates in full (there is no incremental state),
//! so refreshing would only repeat that work: `bunting serve` does not
//! start the task there.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::Store;
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! assert_eq!(bunting_origin::refresh::round(&store).await.unwrap(), 0); // nothing running
//! # });
//! ```

use std::time::Duration;

use crate::store::{Result, Store};

/// Looks at the results of every running experiment once, as the results
/// endpoint does ([`Store::results_data`]), in id order; returns how many
/// were looked at. A failing look is logged and the round goes on: one
/// experiment's trouble never keeps the others cold.
pub async fn round(store: &Store) -> Result<usize> {
    let mut looked = 0;
    for x in store.running_experiments().await? {
        let project = match store.environment(x.environment_id).await {
            Ok(env) => env.project_id,
            Err(e) => {
                tracing::warn!(environment = x.environment_id, experiment = %x.spec.key, error = %e, "refreshing results: no environment");
                continue;
            }
        };
        match store.results_data(project, &x).await {
            Ok(_) => looked += 1,
            Err(e) => {
                tracing::warn!(environment = x.environment_id, experiment = %x.spec.key, error = %e, "refreshing results failed")
            }
        }
    }
    Ok(looked)
}

/// Runs a [`round`] every `every`, the first one at once, until aborted.
pub fn spawn(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            match round(&store).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(
                    experiments = n,
                    seconds = started.elapsed().as_secs_f64(),
                    "refreshed experiment results"
                ),
                Err(e) => tracing::warn!(error = %e, "refreshing experiment results failed"),
            }
        }
    })
}
