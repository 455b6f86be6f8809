//! The acceptance rules for a fetched snapshot, applied before the engine
//! sees it: a JSON object with a checksum, the engine's schema, the right
//! environment and a newer version.

use serde_json::{Map, Value};

use crate::error::SnapshotError;

/// What the checks found.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Newer: load it. Carries the parsed header fields and flags.
    Load(Header),
    /// The version in use: nothing to do.
    Unchanged,
}

/// The fields the client keeps about a snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) environment: String,
    pub(crate) version: u64,
    /// Flag key → flag object, to tell which flags a change touched.
    pub(crate) flags: Map<String, Value>,
}

/// The rules; `require_checksum` is false only for fixed snapshots.
pub(crate) struct Rules<'a> {
    pub(crate) schema_version: u32,
    pub(crate) environment: Option<&'a str>,
    pub(crate) current_version: Option<u64>,
    pub(crate) require_checksum: bool,
}

/// Checks `text` against `rules`.
pub(crate) fn check(text: &str, rules: &Rules<'_>) -> Result<Verdict, SnapshotError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| SnapshotError::NotJson(e.to_string()))?;
    let Value::Object(doc) = doc else {
        return Err(SnapshotError::NotJson("not an object".into()));
    };
    let checksum = doc.get("checksum").and_then(Value::as_str);
    if rules.require_checksum && checksum.is_none() {
        return Err(SnapshotError::MissingChecksum);
    }
    let schema = doc.get("schemaVersion");
    if schema.and_then(Value::as_u64) != Some(u64::from(rules.schema_version)) {
        return Err(SnapshotError::Schema {
            found: schema.map_or("(none)".into(), Value::to_string),
            engine: rules.schema_version,
        });
    }
    let environment = doc
        .get("environment")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(expected) = rules.environment
        && expected != environment
    {
        return Err(SnapshotError::Environment {
            found: environment,
            expected: expected.into(),
        });
    }
    let version = doc.get("version").and_then(Value::as_u64).unwrap_or(0);
    if let Some(current) = rules.current_version {
        if version < current {
            return Err(SnapshotError::Older {
                found: version,
                current,
            });
        }
        if version == current {
            return Ok(Verdict::Unchanged);
        }
    }
    let flags = doc
        .get("flags")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| Some((f.get("key")?.as_str()?.to_owned(), f.clone())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Verdict::Load(Header {
        environment,
        version,
        flags,
    }))
}

/// Keys whose flag object differs between two snapshots, plus added and
/// removed keys, sorted.
pub(crate) fn changed_flags(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(current: Option<u64>) -> Rules<'static> {
        Rules {
            schema_version: 1,
            environment: Some("prod"),
            current_version: current,
            require_checksum: true,
        }
    }

    #[test]
    fn the_rules_in_order() {
        let ok =
            r#"{"schemaVersion":1,"environment":"prod","version":3,"checksum":"x","flags":[]}"#;
        assert!(matches!(check(ok, &rules(None)), Ok(Verdict::Load(_))));
        assert!(matches!(check(ok, &rules(Some(3))), Ok(Verdict::Unchanged)));
        assert!(matches!(
            check(ok, &rules(Some(4))),
            Err(SnapshotError::Older {
                found: 3,
                current: 4
            })
        ));
        assert!(matches!(
            check("[1]", &rules(None)),
            Err(SnapshotError::NotJson(_))
        ));
        let no_sum = r#"{"schemaVersion":1,"environment":"prod","version":3}"#;
        assert_eq!(
            check(no_sum, &rules(None)).unwrap_err(),
            SnapshotError::MissingChecksum
        );
        let schema = r#"{"schemaVersion":2,"environment":"prod","version":3,"checksum":"x"}"#;
        assert_eq!(
            check(schema, &rules(None)).unwrap_err().to_string(),
            "snapshot schema 2 is not the engine's 1; upgrade the package"
        );
        let env = r#"{"schemaVersion":1,"environment":"dev","version":3,"checksum":"x"}"#;
        assert!(matches!(
            check(env, &rules(None)),
            Err(SnapshotError::Environment { .. })
        ));
    }

    #[test]
    fn changed_flags_lists_edits_additions_and_removals() {
        let old: Map<String, Value> = serde_json::from_str(r#"{"a": 1, "b": 2, "c": 3}"#).unwrap();
        let new: Map<String, Value> = serde_json::from_str(r#"{"a": 1, "b": 5, "d": 4}"#).unwrap();
        assert_eq!(changed_flags(&old, &new), ["b", "c", "d"]);
    }
}
