//! # bunting-origin
//!
//! The origin side of bunting: it reads and writes the flag-definition
//! format through the `bunting-defs` crate ([`bunting_defs`]; [`export`]
//! writes a stored project back as a definition file), and the
//! Cloudflare KV layout the edge worker reads, written through wrangler
//! ([`kv`]). The `bunting` binary (`src/bin/bunting/`) is the command-line face:
//! `bunting validate`, `bunting snapshot`, `bunting publish`, and the origin
//! service `bunting serve` ([`serve`]): the HTTP API ([`api`]) over the
//! store ([`store`], SQLite or PostgreSQL), the publisher that pushes each
//! change to the edge ([`publish`]), and Prometheus metrics ([`metrics`]).
//!
//! The format and the operations path are documented in `docs/flags.md`.

pub mod api;
pub mod export;
pub mod ingest;
pub mod kv;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod publish;
pub mod results;
pub mod retention;
pub mod rollback;
pub mod serve;
pub mod store;
