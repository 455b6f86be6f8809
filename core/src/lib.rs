//! # bunting-core
//!
//! The rule engine of bunting: flag model, targeting rule language,
//! deterministic bucketing, snapshot format and evaluation. Pure Rust with no
//! I/O; it compiles natively, to WebAssembly for JavaScript hosts (feature
//! `js`, through wasm-bindgen) and to WebAssembly for any other host (feature
//! `abi`, a plain C ABI used by `bunting-wasm-host` through wasmtime). Every
//! host runs this one evaluator, so results are identical everywhere.
//!
//! ```
//! use bunting_core::Engine;
//! use serde_json::json;
//! let engine = Engine::from_json(r#"{"schemaVersion": 1, "environment": "dev", "version": 1,
//!   "generatedAt": "2026-11-25T00:00:00Z",
//!   "flags": [{"key": "banner", "type": "string", "variants": {"a": "Hello", "b": "Hi"},
//!     "offVariant": "a", "fallthrough": {"rollout": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}}]}"#).unwrap();
//! let r = engine.evaluate("banner", &json!({"targetingKey": "user-1"}), 0);
//! assert_eq!(r.reason.as_str(), "SPLIT");
//! ```

mod borrowed;
pub mod bucket;
pub mod compact;
mod compile;
pub mod conformance;
pub mod context;
mod engine;
pub mod keyhash;
pub mod lowercase;
pub mod model;
mod numtext;
pub mod packed;
mod parsed;
pub mod protocol;
pub mod result;
pub mod rules;
pub mod snapshot;
pub mod time;

#[cfg(all(feature = "abi", target_arch = "wasm32"))]
pub mod abi;
#[cfg(feature = "js")]
pub mod js;

pub use context::{Attr, Context, ContextRef, EvaluationContext};
pub use engine::Engine;
pub use model::{Flag, FlagMetadata, FlagType, Serve, Snapshot};
pub use parsed::{ParsedFlag, ParsedSnapshot};
pub use result::{ErrorCode, Evaluation, Reason};
pub use snapshot::{LoadError, Problem};
