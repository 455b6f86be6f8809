//! The conformance fixture files, embedded so that hosts without a file
//! system (wasm-bindgen-test under Node) run exactly the same data.
//! `conformance.rs` checks that this list matches `tests/conformance/`.

/// `(file name, contents)` of every fixture file.
pub(crate) const FIXTURES: &[(&str, &str)] = &[
    (
        "basics.json",
        include_str!("../../../tests/conformance/basics.json"),
    ),
    (
        "errors.json",
        include_str!("../../../tests/conformance/errors.json"),
    ),
    (
        "layers.json",
        include_str!("../../../tests/conformance/layers.json"),
    ),
    (
        "operators.json",
        include_str!("../../../tests/conformance/operators.json"),
    ),
    (
        "prerequisites.json",
        include_str!("../../../tests/conformance/prerequisites.json"),
    ),
    (
        "rollouts.json",
        include_str!("../../../tests/conformance/rollouts.json"),
    ),
    (
        "schedules.json",
        include_str!("../../../tests/conformance/schedules.json"),
    ),
    (
        "segments.json",
        include_str!("../../../tests/conformance/segments.json"),
    ),
    (
        "semver-time.json",
        include_str!("../../../tests/conformance/semver-time.json"),
    ),
    (
        "types.json",
        include_str!("../../../tests/conformance/types.json"),
    ),
];
