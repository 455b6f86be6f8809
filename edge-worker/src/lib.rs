//! bunting's Cloudflare Worker. Not built yet: this crate only reserves its
//! place in the workspace and re-exports the engine it will serve.

pub use bunting_core::Engine;
