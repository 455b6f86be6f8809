//! Lowercasing for the rule language's `lower()`: Unicode's default full
//! case mapping, locale-independent (`İ` → `i̇`, a word-final `Σ` → `ς`),
//! as [`str::to_lowercase`] gives it.
//!
//! That mapping needs case tables: about 16 KB of a WebAssembly module,
//! 7.6 KB of the gzipped edge bundle. Builds with the default feature
//! `unicode-lowercase` use the standard library's. Builds without it
//! lowercase ASCII text themselves and hand other text to the mapping the
//! host installed with [`install`] (the edge worker installs JavaScript's
//! `String.prototype.toLowerCase`, the same mapping); until one is
//! installed, `lower()` of non-ASCII text is missing, so a comparison with
//! it is false. The conformance fixtures check every host against an
//! independent reference (Python's `str.lower`).

use std::sync::OnceLock;

/// A host's full Unicode lowercase mapping.
pub type Mapping = fn(&str) -> String;

static HOST: OnceLock<Mapping> = OnceLock::new();

/// Installs the host's mapping for non-ASCII text, once per process or
/// module instance; returns `false` if one was installed before (the first
/// stays). Builds with the `unicode-lowercase` feature keep using the
/// standard library's mapping.
pub fn install(mapping: Mapping) -> bool {
    HOST.set(mapping).is_ok()
}

/// `text` lowercased by the standard library's mapping.
#[cfg(feature = "unicode-lowercase")]
pub(crate) fn lowercase(text: &str) -> Option<String> {
    Some(text.to_lowercase())
}

/// `text` lowercased, or `None` in a build without `unicode-lowercase`
/// whose host installed no mapping for non-ASCII text.
#[cfg(not(feature = "unicode-lowercase"))]
pub(crate) fn lowercase(text: &str) -> Option<String> {
    if text.is_ascii() {
        Some(text.to_ascii_lowercase())
    } else {
        HOST.get().map(|mapping| mapping(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "unicode-lowercase")]
    #[test]
    fn full_mapping_with_final_sigma() {
        assert_eq!(lowercase("ÉMILE").as_deref(), Some("émile"));
        assert_eq!(lowercase("ΟΔΟΣ Σ").as_deref(), Some("οδος σ"));
        assert_eq!(lowercase("İ").as_deref(), Some("i\u{307}"));
        assert_eq!(lowercase("Us").as_deref(), Some("us"));
    }

    /// Run with `cargo test -p bunting-core --no-default-features
    /// --features rule-parser --lib lowercase`; the edge worker's build is
    /// checked through workerd by the conformance fixtures.
    #[cfg(not(feature = "unicode-lowercase"))]
    #[test]
    fn non_ascii_text_goes_to_the_installed_mapping() {
        assert_eq!(lowercase("Us").as_deref(), Some("us"));
        assert_eq!(lowercase("ÉMILE"), None);
        assert!(install(|text| text.to_lowercase()));
        assert!(!install(|text| text.to_uppercase()));
        assert_eq!(lowercase("ÉMILE").as_deref(), Some("émile"));
    }
}
