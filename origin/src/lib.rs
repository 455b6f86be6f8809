//! # bunting-origin
//!
//! The origin service, `bunting serve` ([`serve`]), and the `bunting` CLI
//! (`src/bin/bunting/`). Its jobs, one module (or folder) each:
//!
//! | module | job |
//! |---|---|
//! | [`api`] | the HTTP API under `/api/v1` (axum; routes and OpenAPI from one place) |
//! | [`console`] | the web console at `/` (embedded `console/dist`, or `--console-dir`) |
//! | [`store`] | storage on SQLite or PostgreSQL: tenants, flags, audit chain, events |
//! | [`model`] | experiments, metrics, guardrails, guarded rollouts: types and validation (pure) |
//! | [`publish`] | the outbox publisher: snapshots and SDK keys to the edge's KV |
//! | [`ingest`] | exposures and metric events from the edge, batched into the store |
//! | [`results`] | experiment results from stored aggregates (pure) |
//! | [`monitor`], [`rollback`], [`notify`] | guarded rollouts: watch, roll back, tell webhooks |
//! | [`retention`] | purging the events of deleted environments |
//! | [`export`] | a stored project back into a definition file (`bunting-defs`) |
//! | [`kv`] | the KV values the publisher writes |
//! | [`webhooks`] | signed webhook messages from the outbox, with retries |
//! | [`metrics`] | Prometheus metrics |
//! | [`oidc`] | OpenID Connect sign-in (discovery, JWKS, ID-token checks) |
//!
//! The flag-definition format itself is the crate `bunting-defs`; the edge's
//! half of the KV and event contract is shared through `bunting-wire`. The
//! crates and the path of a request are mapped in `ARCHITECTURE.md`.

pub mod api;
pub mod console;
pub mod export;
pub mod ingest;
pub mod kv;
pub mod metrics;
pub mod model;
pub mod monitor;
pub mod notify;
pub mod oidc;
pub mod publish;
pub mod refresh;
pub mod results;
pub mod retention;
pub mod rollback;
pub mod schedule;
pub mod serve;
pub mod store;
pub mod webhooks;
