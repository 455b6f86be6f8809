//! Retention of deleted tenants' events.
//!
//! Exposures and metric events are keyed by their environment's id, which
//! is never reused (migration 0009): from the moment an environment (or its
//! project or organization) is deleted, its events are unreachable, and a
//! new environment with the same keys starts empty. [`spawn`] then deletes
//! them for good in the background, in short chunks
//! ([`Store::purge_orphaned_events`]), so a large deletion never holds the
//! database for long. Purging also drops the environment's cached
//! looks ([`Store::drop_cached_looks`]): an incremental look
//! only ever adds rows written since the last one, so whatever deletes
//! events must make the next look aggregate in full.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::{Actor, Store};
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! let a = Actor::new("ana");
//! let org = store.create_org(&a, "acme", "Acme").await.unwrap();
//! store.delete_org(&a, org.id, org.version).await.unwrap();
//! assert_eq!(store.purge_orphaned_events(0).await.unwrap(), 0); // nothing stored
//! let task = bunting_origin::retention::spawn(store, std::time::Duration::from_secs(60));
//! task.abort();
//! # });
//! ```

use std::time::Duration;

use crate::store::Store;

/// How long a deleted environment stays in the purge queue after its
/// deletion (a batch resolved just before the deletion may still commit
/// under its id meanwhile): ten minutes.
pub const SETTLE_MS: i64 = 10 * 60 * 1000;

/// Purges deleted environments' events every `every`, until aborted.
pub fn spawn(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.purge_orphaned_events(SETTLE_MS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "purged events of deleted environments"),
                Err(e) => {
                    tracing::warn!(error = %e, "purging events of deleted environments failed")
                }
            }
        }
    })
}
