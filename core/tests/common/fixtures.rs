//! The conformance fixture files, embedded so that hosts without a file
//! system (wasm-bindgen-test under Node) run exactly the same data.
//! `conformance.rs` checks that this list matches `tests/conformance/`.

/// `(file name, contents)` of every fixture file.
pub const FIXTURES: &[(&str, &str)] = &[(
    "basics.json",
    include_str!("../../../tests/conformance/basics.json"),
)];
