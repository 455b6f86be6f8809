//! # bunting-server-sdk
//!
//! bunting's server SDK for Rust. A [`Client`] keeps one environment's
//! snapshot fresh in the background — from the edge's snapshot endpoint,
//! Cloudflare KV's REST API, or the origin's directory publisher, with an
//! optional bootstrap file — and evaluates flags **locally and
//! synchronously**: no evaluation ever waits on the network. Evaluations
//! that assign a user to a split become exposures, deduplicated, queued in
//! bounded memory and sent to the origin's ingest by a background flusher;
//! [`Client::track`] forwards metric events the same way.
//! [`BuntingProvider`] plugs the client into the `open-feature` SDK.
//!
//! ## Engines
//! Two backends answer through one trait ([`FlagEngine`]):
//! - **wasmtime** (default, feature `wasm`): bunting-core compiled to WASM,
//!   the very module the Node and Python hosts run, so results are
//!   identical everywhere; calls are bounded in time, the compiled module is
//!   cached on disk across starts, and a pool of instances serves threads.
//! - **native** ([`ClientBuilder::native`]): bunting-core compiled into the
//!   program. Faster (no JSON boundary) and no `.wasm` file to ship, but
//!   unbounded calls and results tied to the bunting-core version you
//!   compiled.
//!
//! ## Fail-static
//! The KV and directory sources read the snapshot's JSON value or its
//! packed form (`bunting serve --kv-format packed`), whose JSON text they
//! take out and check alike. A snapshot is swapped in only if it is a JSON object with a `checksum`,
//! of the engine's `schemaVersion`, for the expected environment, newer than
//! the current one, and loads (the engine verifies the checksum). Anything
//! else keeps the last good snapshot, records the error and reports
//! [`Status::Stale`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), bunting_server_sdk::SdkError> {
//! use serde_json::json;
//! let client = bunting_server_sdk::Client::builder("bsk_server_key")
//!     .directory("/var/lib/bunting/publish", "acme/web/production")
//!     .ingest_url("http://origin.internal:8080/api/v1/events")
//!     .build()
//!     .await?;
//! let e = client.evaluate("new-checkout", None, &json!({"targetingKey": "user-1"}))?;
//! println!("{:?} because {}", e.value, e.reason.as_str());
//! // The same without JSON: a `Context` borrowing the strings at hand.
//! let ctx = bunting_server_sdk::Context::new().with_targeting_key("user-1");
//! assert_eq!(client.evaluate("new-checkout", None, &ctx)?, e);
//! client.close().await;
//! # Ok(()) }
//! ```

mod builder;
mod client;
mod context;
mod engine;
mod error;
mod exposure;
mod ingest;
mod options;
mod packed;
mod provider;
mod source;
mod status;
mod verify;

pub use builder::ClientBuilder;
pub use bunting_core::{Attr, Context};
pub use client::Client;
pub use context::{SdkContext, context_to_json, struct_to_json};
pub use engine::{EngineKind, FlagEngine};
pub use error::{SdkError, SnapshotError};
pub use ingest::MAX_BATCH;
pub use options::Clock;
pub use provider::{BuntingProvider, error_code};
pub use source::{CLOUDFLARE_API, Source, encode_key};
pub use status::{ClientEvent, CounterValues, Health, Status};

#[cfg(feature = "wasm")]
pub use bunting_wasm_host::RuntimeOptions;
