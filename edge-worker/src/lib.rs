//! bunting's Cloudflare Worker: flag evaluation at the edge over OFREP (the
//! OpenFeature Remote Evaluation Protocol).
//!
//! | route | does |
//! |---|---|
//! | `POST /ofrep/v1/evaluate/flags/{key}` | one flag ([`ofrep`]) |
//! | `POST /ofrep/v1/evaluate/flags` | every flag, with an `ETag` (`If-None-Match` → 304) |
//! | `POST /exposures` | the flags a client used: exposures, re-evaluated and deduplicated ([`reports`]) |
//! | `POST /events` | validates metric events and forwards them to `INGEST_URL` |
//! | `GET /sdk/v1/snapshot` | the environment's whole snapshot, for server SDK keys ([`snapshot`]) |
//! | `POST /edge/v1/snapshot` | the origin publishes a snapshot to its environment's pointer ([`pointer`](mod@pointer)) |
//! | `GET /healthz` | `ok` or `degraded`; with the operator secret, the snapshot of every environment this isolate serves ([`health`], [`cache`]) |
//! | `OPTIONS *` | CORS preflight ([`cors`]) |
//!
//! Every module but `worker_main` (the Workers runtime glue, wasm32 only) is
//! plain Rust, unit-tested natively. Build the Worker with
//! `cargo xtask edge`; `tests/edge/` drives it in workerd through miniflare.

pub mod answers;
pub mod audience;
pub mod auth;
pub mod cache;
pub mod context;
pub mod cookie;
pub mod cors;
pub mod dedup;
pub mod device;
pub mod events;
pub mod exposure;
pub mod fragments;
pub mod geo;
pub mod health;
pub mod ingest;
pub mod ofrep;
pub mod pointer;
pub mod queue;
pub mod random;
pub mod ratelimit;
pub mod reports;
pub mod request_url;
pub mod routes;
pub mod settings;
pub mod slots;
pub mod snapshot;
pub mod sse;

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod incoming;
#[cfg(target_arch = "wasm32")]
mod pointer_object;
#[cfg(target_arch = "wasm32")]
mod worker_main;

pub use bunting_core::Engine;

#[cfg(test)]
mod test_fixtures {
    /// The conformance fixture files (`tests/conformance/*.json`), sorted.
    pub(crate) fn conformance_paths() -> Vec<std::path::PathBuf> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        assert!(paths.len() >= 10, "{paths:?}");
        paths
    }
}
