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

/// The snapshot JSON text of a published `snapshot:<env>` value: the
/// document a packed value (the publishers' default) carries, or the
/// value itself when it is JSON (`KvFormat::Json`).
pub(crate) fn snapshot_json(value: &[u8]) -> &str {
    use bunting_core::packed;
    if value.starts_with(&packed::MAGIC) {
        packed::document(value)
            .expect("a readable packed value")
            .expect("a packed value carries its JSON")
    } else {
        std::str::from_utf8(value).expect("a JSON value is UTF-8")
    }
}
