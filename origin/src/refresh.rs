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
//! An experiment stopped in the last few rounds is looked at too: its
//! window is now fixed at the stop, a configuration of its own, so its
//! final results are aggregated in the background rather than when
//! someone first opens them. The guardrail monitor's look at a running
//! experiment is this same look ([`crate::monitor`]), so when both run,
//! the second of them finds the state current.
//!
//! Origins sharing one PostgreSQL database take turns: each round is done
//! by the one that gets the round's lock ([`crate::store::lead`]).
//!
//! On SQLite every look aggregates in full (there is no incremental state),
//! so refreshing would only repeat that work: `bunting serve` does not
//! start the task there.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::Store;
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let refresher = bunting_origin::refresh::Refresher::default();
//! assert_eq!(refresher.round(&store).await.unwrap(), 0); // nothing running
//! # });
//! ```

use std::time::Duration;

use crate::model::experiment::ExperimentRecord;
use crate::store::lead::Task;
use crate::store::{Result, Store};

/// How long after its stop an experiment's final look is retaken at least
/// (see [`Refresher::final_window`]).
const MIN_FINAL_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The refresh rounds. They keep no memory of their own: which experiments
/// to look at comes from the store, so an origin that restarted, or that
/// took over the rounds from another origin, misses no experiment's final
/// look.
#[derive(Debug, Clone)]
pub struct Refresher {
    every: Duration,
}

impl Default for Refresher {
    /// Rounds every minute, `bunting serve`'s default.
    fn default() -> Self {
        Refresher::new(Duration::from_secs(60))
    }
}

impl Refresher {
    /// Rounds `every` apart.
    pub fn new(every: Duration) -> Self {
        Refresher { every }
    }

    /// How long after its stop an experiment is looked at again: three
    /// rounds, and at least a quarter of an hour, so that skipped rounds
    /// (another origin's turn, a restart) still leave one round to take
    /// the final look. A look after the first finds its sums current and
    /// costs milliseconds.
    pub fn final_window(&self) -> Duration {
        (3 * self.every).max(MIN_FINAL_WINDOW)
    }

    /// Looks once at the results of every running experiment and of every
    /// experiment stopped (or decided) within [`Refresher::final_window`],
    /// as the results endpoint does ([`Store::results_data`]), in id
    /// order; returns how many were looked at. A stopped experiment's
    /// window is fixed at its stop, a configuration of its own, so its
    /// final results are aggregated here rather than when someone first
    /// opens them. A failing look is logged and the round goes on: one
    /// experiment's trouble never keeps the others cold.
    pub async fn round(&self, store: &Store) -> Result<usize> {
        let since = time::OffsetDateTime::now_utc() - self.final_window();
        let mut looked = 0;
        for x in store.experiments_to_refresh(since).await? {
            looked += usize::from(look(store, &x).await);
        }
        Ok(looked)
    }

    /// A [`Refresher::round`] when this origin has the refresh's turn
    /// ([`Store::lead`]), else nothing (`None`): origins sharing one
    /// database refresh once per round between them, not once each.
    pub async fn round_if_leading(&self, store: &Store) -> Result<Option<usize>> {
        let Some(lead) = store.lead(Task::ResultsRefresh).await? else {
            return Ok(None);
        };
        let looked = self.round(store).await;
        lead.end().await?;
        looked.map(Some)
    }
}

/// One look at `x`'s results; whether it succeeded (a failure is logged).
async fn look(store: &Store, x: &ExperimentRecord) -> bool {
    let looked = match store.environment(x.environment_id).await {
        Ok(env) => store.results_data(env.project_id, x).await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = &looked {
        tracing::warn!(
            environment = x.environment_id,
            experiment = %x.spec.key,
            error = %e,
            "refreshing experiment results failed"
        );
    }
    looked.is_ok()
}

/// Runs a [`Refresher::round_if_leading`] every `every`, the first one at
/// once, until aborted.
pub fn spawn(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let refresher = Refresher::new(every);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            match refresher.round_if_leading(&store).await {
                Ok(None) => tracing::debug!("another origin refreshes experiment results"),
                Ok(Some(0)) => {}
                Ok(Some(n)) => tracing::debug!(
                    experiments = n,
                    seconds = started.elapsed().as_secs_f64(),
                    "refreshed experiment results"
                ),
                Err(e) => tracing::warn!(error = %e, "refreshing experiment results failed"),
            }
        }
    })
}
