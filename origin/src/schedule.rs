//! Scheduled changes: approved change requests with an `applyAt` apply by
//! themselves when their time comes ([`Store::apply_due_changes`]). Every
//! origin sharing a database may run this loop; each request still applies
//! exactly once, and one that fails is marked `failed` with its reason
//! (audited, so webhooks announce it), never retried into another state.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use bunting_origin::store::Store;
//! let store = Store::open("sqlite::memory:").await.unwrap();
//! assert_eq!(store.apply_due_changes().await.unwrap(), (vec![], vec![]));
//! let wakeup = std::sync::Arc::new(tokio::sync::Notify::new());
//! let task = bunting_origin::schedule::spawn(store, wakeup, std::time::Duration::from_secs(5));
//! task.abort();
//! # });
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

/// Applies due change requests every `every`, waking the publisher after
/// each that applied, until aborted.
pub fn spawn(
    store: Store,
    publish: Arc<tokio::sync::Notify>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.apply_due_changes().await {
                Ok((applied, failed)) => {
                    if !applied.is_empty() {
                        tracing::info!(?applied, "applied scheduled change requests");
                        publish.notify_one();
                    }
                    for id in failed {
                        tracing::warn!(
                            change_request = id,
                            "a scheduled change request failed to apply"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "applying scheduled change requests failed"),
            }
        }
    })
}
