//! bunting's engine side by side with the two published Rust flag engines of
//! the field, `unleash-yggdrasil` and `launchdarkly-server-sdk-evaluation`.
//!
//! One description of the flags ([`spec`]) is rendered into each engine's
//! native format ([`render`]), loaded through each engine's public API
//! ([`engines`]), and checked for agreement on varied users
//! ([`agreement`]) before the benchmark binary (`src/main.rs`) measures
//! anything. This crate is not published and no shipped crate depends on it,
//! so the peers never reach a bunting build.

pub mod agreement;
pub mod engines;
pub mod measure;
pub mod render;
pub mod spec;
