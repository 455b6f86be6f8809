//! The contract between bunting's edge worker (`edge-worker/`) and its
//! origin (`origin/`), written once: both depend on this crate, so a change
//! on one side cannot silently break the other.
//!
//! | module | what |
//! |---|---|
//! | [`kv`] | the Cloudflare KV key layout the origin publishes and the edge reads, and the SDK-key hash |
//! | [`batch`] | the exposure and metric-event batches the edge POSTs to the origin's `POST /api/v1/events` |
//! | [`event_name`] | which metric-event names are valid (edge, ingestion, metric definitions) |
//! | [`secret`] | comparing secrets in constant time |
//!
//! Pure Rust, no I/O; builds for `wasm32-unknown-unknown`. Golden examples
//! of both batch kinds are in `wire/tests/data/`; the edge's and the origin's
//! tests read them too.
//!
//! ```
//! use bunting_wire::{IngestBatch, kv};
//! assert_eq!(kv::snapshot_key("acme/web/production"), "snapshot:acme/web/production");
//! let body = serde_json::to_string(&IngestBatch::exposures(Vec::new())).unwrap();
//! assert_eq!(body, r#"{"kind":"exposures","exposures":[]}"#);
//! ```

pub mod batch;
pub mod event_name;
pub mod kv;
pub mod secret;

pub use batch::{EventRecord, ExposureRecord, IngestBatch};
pub use event_name::{EventNameError, MAX_EVENT_NAME_LEN, check_event_name};
pub use secret::same_secret;
