//! Snapshot parsing, integrity checksum and load errors.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::model::Snapshot;

/// One problem found while validating a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The flag (or segment / layer) key the problem belongs to, if any.
    pub entity: Option<String>,
    /// JSON path of the offending field, e.g. `flags[3].rules[0].condition`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Whether the problem is a rule-language parse error.
    pub parse_error: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entity {
            Some(e) => write!(f, "{e}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoadError {
    /// The document is not well-formed JSON of the snapshot shape.
    #[error("snapshot is not a valid document at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The document parsed but failed validation; every problem is listed.
    #[error("snapshot has {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// Parses a snapshot document without validating its content.
///
/// ```
/// use bunting_core::snapshot::{parse_json, LoadError};
/// assert!(matches!(parse_json("{"), Err(LoadError::Syntax { line: 1, .. })));
/// ```
pub fn parse_json(json: &str) -> Result<Snapshot, LoadError> {
    serde_json::from_str(json).map_err(|e| LoadError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })
}

/// The integrity checksum of a snapshot: `sha256:` and the lowercase hex
/// SHA-256 of its canonical JSON (the compact serialization of this crate's
/// [`Snapshot`] type, fields in declaration order, object keys sorted) with
/// the `checksum` field left out.
///
/// ```
/// use bunting_core::snapshot::{checksum, seal, parse_json};
/// let mut s = parse_json(r#"{"schemaVersion":1,"environment":"dev","version":1,
///     "generatedAt":"2026-01-01T00:00:00Z","flags":[]}"#).unwrap();
/// seal(&mut s);
/// assert_eq!(s.checksum.as_deref(), Some(checksum(&s).as_str()));
/// assert!(s.checksum.unwrap().starts_with("sha256:"));
/// ```
pub fn checksum(snapshot: &Snapshot) -> String {
    // One buffer and one hash update: hashing serde's many small writes
    // one by one costs more than the copy.
    let canonical =
        serde_json::to_vec(&UnsealedRef(snapshot)).expect("serializing a snapshot cannot fail");
    format!("sha256:{}", hex::encode(Sha256::digest(&canonical)))
}

/// Sets `snapshot.checksum` to its current checksum.
pub fn seal(snapshot: &mut Snapshot) {
    snapshot.checksum = Some(checksum(snapshot));
}

/// Serializes a snapshot as if its checksum were absent, without cloning it.
struct UnsealedRef<'a>(&'a Snapshot);

impl serde::Serialize for UnsealedRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let v = self.0;
        let mut st = s.serialize_struct("Snapshot", 7)?;
        st.serialize_field("schemaVersion", &v.schema_version)?;
        st.serialize_field("environment", &v.environment)?;
        st.serialize_field("version", &v.version)?;
        st.serialize_field("generatedAt", &v.generated_at)?;
        st.serialize_field("flags", &v.flags)?;
        st.serialize_field("segments", &v.segments)?;
        st.serialize_field("layers", &v.layers)?;
        st.end()
    }
}
