//! bunting's Cloudflare Worker. Not built yet: this crate only reserves its
//! place in the workspace and re-exports the engine it will serve.

pub mod device;
pub mod context;
pub mod cookie;
pub mod geo;
pub mod exposure;
pub mod events;

pub use bunting_core::Engine;
