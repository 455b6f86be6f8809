//! Random bytes from the platform's CSPRNG: `crypto.getRandomValues` in a
//! Worker, `getrandom` natively (the unit tests).
//!
//! In a Worker the one Web Crypto call is bound directly: `getrandom`'s
//! `js` backend also probes for Node's `crypto` module, `msCrypto` and
//! the global object (imports, glue and Rust code in the bundle) before
//! it reaches the same call.
//!
//! ```
//! let mut a = [0u8; 16];
//! let mut b = [0u8; 16];
//! bunting_edge_worker::random::fill(&mut a).unwrap();
//! bunting_edge_worker::random::fill(&mut b).unwrap();
//! assert_ne!(a, b);
//! ```

/// The platform's random number source failed.
#[derive(Debug, thiserror::Error)]
#[error("the platform's random number source failed")]
pub struct RandomError;

/// Fills `bytes` with random bytes (at most 65,536 at once, Web Crypto's
/// limit per call).
pub fn fill(bytes: &mut [u8]) -> Result<(), RandomError> {
    #[cfg(target_arch = "wasm32")]
    {
        get_random_values(bytes).map_err(|_| RandomError)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        getrandom::getrandom(bytes).map_err(|_| RandomError)
    }
}

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues(bytes)`, filling the Rust slice in place.
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(bytes: &mut [u8]) -> Result<(), wasm_bindgen::JsValue>;
}
