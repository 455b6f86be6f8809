//! Fixtures of the publication loop: options that retry quickly and a
//! directory of its own for a directory publisher.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bunting_origin::publish::PublishOptions;

/// Polls every 20 ms and backs off from 5 to 40 ms, so that tests wait
/// milliseconds for the loop.
pub(crate) fn fast() -> PublishOptions {
    PublishOptions {
        poll_interval: Duration::from_millis(20),
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(40),
        ..PublishOptions::default()
    }
}

/// A path under the system's temporary directory that no other test uses
/// (`bunting-{name}-…`); not created.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "bunting-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
