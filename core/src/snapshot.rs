//! Snapshot parsing, integrity checksum and load errors.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::borrowed;
use crate::model::Snapshot;
use crate::rules::{ParseError, Span};

/// One problem found while validating a snapshot.
///
/// Where it is comes twice: as text (`entity`, `path`, as every version of
/// the snapshot format has reported it) and as data ([`location`], and
/// [`span`] inside a condition), so that a program can map it back to its
/// source without reading the text.
///
/// Serialized (the WASM and JavaScript bindings, the edge's health report),
/// `message` keeps its historical form: a rule-language error starts with
/// `LINE:COLUMN: `. The `location` and `span` fields follow it.
///
/// ```
/// use bunting_core::snapshot::{EntityKind, Location};
/// use bunting_core::{Engine, LoadError};
/// let Err(LoadError::Invalid(problems)) = Engine::from_json(r#"{"schemaVersion": 1,
///     "environment": "dev", "version": 1, "generatedAt": "2026-11-25T00:00:00Z",
///     "flags": [{"key": "beta", "type": "boolean", "variants": {"on": true, "off": false},
///       "offVariant": "off", "rules": [{"condition": "plan == \"pro\" | x", "serve": {"variant": "on"}}],
///       "fallthrough": {"variant": "off"}}]}"#) else { panic!() };
/// let p = &problems[0];
/// assert_eq!(p.location, Location::flag(0, "beta", "rules[0].condition"));
/// assert_eq!(p.location.entity.as_ref().unwrap().kind, EntityKind::Flag);
/// assert_eq!(p.path, "flags[0].rules[0].condition");
/// let span = p.span.unwrap();
/// assert_eq!((span.line, span.column, span.length), (1, 15, 1));
/// assert_eq!(p.message, "expected `||`, found `|`");
/// assert_eq!(p.to_string(), "beta: flags[0].rules[0].condition: 1:15: expected `||`, found `|`");
/// let wire = serde_json::to_value(p).unwrap();
/// assert_eq!(wire["message"], "1:15: expected `||`, found `|`");
/// assert_eq!(wire["parseError"], true);
/// assert_eq!(serde_json::from_value::<bunting_core::Problem>(wire).unwrap(), *p);
/// ```
///
/// [`location`]: Problem::location
/// [`span`]: Problem::span
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "WireProblem", from = "WireProblem")]
pub struct Problem {
    /// The flag (or segment / layer) key the problem belongs to, if any.
    pub entity: Option<String>,
    /// JSON path of the offending field, e.g. `flags[3].rules[0].condition`.
    pub path: String,
    /// What is wrong. Without the position: a rule-language error's
    /// position inside the condition is [`Problem::span`].
    pub message: String,
    /// Whether the problem is a rule-language parse error.
    pub parse_error: bool,
    /// The offending entity and field, as data.
    pub location: Location,
    /// Where in the condition a rule-language error is (parse errors only).
    pub span: Option<Span>,
}

impl Problem {
    /// A problem of the field at `location`.
    pub fn new(location: Location, message: impl Into<String>) -> Problem {
        Problem {
            entity: location.entity.as_ref().map(|e| e.key.clone()),
            path: location.path(),
            message: message.into(),
            parse_error: false,
            location,
            span: None,
        }
    }

    /// A rule-language error in the condition at `location`.
    pub fn parse_error(location: Location, error: &ParseError) -> Problem {
        Problem {
            parse_error: true,
            span: Some(error.span()),
            ..Problem::new(location, error.reason())
        }
    }

    /// The message with the position in front when there is one
    /// (`1:15: expected …`): the serialized `message`.
    pub fn full_message(&self) -> String {
        match &self.span {
            Some(span) => format!("{span}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.entity {
            write!(f, "{e}: ")?;
        }
        write!(f, "{}: ", self.path)?;
        if let Some(span) = &self.span {
            write!(f, "{span}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The kinds of entity a snapshot holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum EntityKind {
    /// An entry of `flags`.
    Flag,
    /// An entry of `segments`.
    Segment,
    /// An entry of `layers`.
    Layer,
}

impl EntityKind {
    /// The snapshot field listing entities of this kind: `flags`,
    /// `segments`, `layers`.
    pub fn field(self) -> &'static str {
        match self {
            EntityKind::Flag => "flags",
            EntityKind::Segment => "segments",
            EntityKind::Layer => "layers",
        }
    }

    /// The kind's name: `flag`, `segment`, `layer`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Flag => "flag",
            EntityKind::Segment => "segment",
            EntityKind::Layer => "layer",
        }
    }
}

/// A flag, segment or layer of a snapshot: its kind, its position in its
/// list and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EntityRef {
    /// Flag, segment or layer.
    pub kind: EntityKind,
    /// 0-based position in the snapshot's list of that kind.
    pub index: usize,
    /// The entity's key (may be empty when the key is the problem).
    pub key: String,
}

/// Where a problem is in a snapshot: the entity whose field it is (none
/// for the snapshot's own fields) and the field, relative to that entity.
///
/// ```
/// use bunting_core::snapshot::Location;
/// assert_eq!(Location::flag(3, "beta", "rules[0].condition").path(), "flags[3].rules[0].condition");
/// assert_eq!(Location::layer(1, "checkout", "").path(), "layers[1]");
/// assert_eq!(Location::snapshot("generatedAt").path(), "generatedAt");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// The flag, segment or layer; `None` for a field of the snapshot
    /// itself (`schemaVersion`, `generatedAt`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<EntityRef>,
    /// The field as a JSON path relative to the entity, e.g.
    /// `rules[0].condition` or `fallthrough.rollout[1].weight`; empty for
    /// the entity as a whole.
    pub field: String,
}

impl Location {
    /// A field of the snapshot itself.
    pub fn snapshot(field: impl Into<String>) -> Location {
        Location {
            entity: None,
            field: field.into(),
        }
    }

    /// A field of an entity.
    pub fn of(kind: EntityKind, index: usize, key: &str, field: impl Into<String>) -> Location {
        Location {
            entity: Some(EntityRef {
                kind,
                index,
                key: key.to_string(),
            }),
            field: field.into(),
        }
    }

    /// A field of flag `index` (key `key`).
    pub fn flag(index: usize, key: &str, field: impl Into<String>) -> Location {
        Location::of(EntityKind::Flag, index, key, field)
    }

    /// A field of segment `index` (key `key`).
    pub fn segment(index: usize, key: &str, field: impl Into<String>) -> Location {
        Location::of(EntityKind::Segment, index, key, field)
    }

    /// A field of layer `index` (key `key`).
    pub fn layer(index: usize, key: &str, field: impl Into<String>) -> Location {
        Location::of(EntityKind::Layer, index, key, field)
    }

    /// The JSON path of the field in the snapshot, e.g.
    /// `flags[3].rules[0].condition`.
    pub fn path(&self) -> String {
        match (&self.entity, self.field.as_str()) {
            (None, field) => field.to_string(),
            (Some(e), "") => format!("{}[{}]", e.kind.field(), e.index),
            (Some(e), field) => format!("{}[{}].{field}", e.kind.field(), e.index),
        }
    }
}

/// [`Problem`] as serialized: the historical fields, `message` with the
/// position in front, then the location as data.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireProblem {
    entity: Option<String>,
    path: String,
    message: String,
    parse_error: bool,
    #[serde(default)]
    location: Location,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    span: Option<Span>,
}

impl From<Problem> for WireProblem {
    fn from(p: Problem) -> WireProblem {
        WireProblem {
            message: p.full_message(),
            entity: p.entity,
            path: p.path,
            parse_error: p.parse_error,
            location: p.location,
            span: p.span,
        }
    }
}

impl From<WireProblem> for Problem {
    /// The inverse of the serialization: `message` loses the position this
    /// crate put in front of it (which `span` carries).
    fn from(w: WireProblem) -> Problem {
        let message = match &w.span {
            Some(span) => match w.message.strip_prefix(&format!("{span}: ")) {
                Some(rest) => rest.to_string(),
                None => w.message,
            },
            None => w.message,
        };
        Problem {
            entity: w.entity,
            path: w.path,
            message,
            parse_error: w.parse_error,
            location: w.location,
            span: w.span,
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
    serde_json::from_str(json).map_err(syntax_error)
}

/// The [`LoadError::Syntax`] of a document serde could not read.
pub(crate) fn syntax_error(e: serde_json::Error) -> LoadError {
    LoadError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
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

/// [`checksum`] of a borrowed snapshot: the same canonical JSON, so the
/// same value, hashed as it is written.
pub(crate) fn checksum_of(snapshot: &borrowed::Snapshot<'_>) -> String {
    let mut sink = borrowed::Sink::new();
    snapshot.canonical(&mut sink);
    format!("sha256:{}", hex::encode(sink.finish()))
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
