//! The server SDK's integration tests, one binary: conformance through the
//! OpenFeature provider, a `bunting_core::Context` against its JSON form,
//! wasmtime vs native on random contexts, failure behaviour against local
//! HTTP servers, packed KV and directory values, and the origin end to end.

mod common;
mod conformance;
mod context;
mod differential;
mod e2e;
mod failures;
mod packed;
