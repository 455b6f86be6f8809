//! The edge benchmark's 1,000-flag snapshot (`tests/edge/bench-data.mjs`),
//! shared by the bench binaries of this crate.

use serde_json::json;

/// The snapshot of `tests/edge/bench-data.mjs` at `version`.
pub(crate) fn snapshot(environment: &str, version: u64) -> String {
    let flags: Vec<_> = (0..1000).map(|i| json!({
        "key": format!("flag-{i}"), "type": "string",
        "variants": {"control": "control", "treatment": "treatment", "off": "off"}, "offVariant": "off",
        "rules": [{"id": "internal", "condition": "email ends_with \"@bunting.dev\" || segment(\"staff\")", "serve": {"variant": "treatment"}},
                  {"id": "launch", "condition": format!("country in [\"US\", \"CA\", \"GB\"] && semver(app.version) >= \"2.{}.0\" && !(plan == \"free\")", i % 7),
                   "serve": {"rollout": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]}}],
        "fallthrough": {"rollout": [{"variant": "control", "weight": 90}, {"variant": "treatment", "weight": 10}]},
        "metadata": {"description": format!("benchmark flag {i}"), "owner": "perf", "tags": ["bench"]}})).collect();
    json!({"schemaVersion": 1, "environment": environment, "version": version, "generatedAt": "2026-11-25T00:00:00Z",
        "segments": [{"key": "staff", "included": ["admin-1", "admin-2"], "condition": "department == \"eng\""}], "flags": flags}).to_string()
}
