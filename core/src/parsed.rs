//! A snapshot document parsed once, for hosts that need more than its
//! engine.
//!
//! [`ParsedSnapshot::parse`] reads a document into the borrowed form
//! [`Engine::from_json`] loads through (strings borrowed from the text, no
//! owned [`crate::model::Snapshot`]). An [`Engine`] is compiled from it with
//! [`Engine::from_parsed`] or [`Engine::from_parsed_lenient`], and the host
//! reads what else it needs from the same parse: the checksum, and per flag
//! its key, type, variants, rule conditions and schedule step times. Errors,
//! problems and answers are those of [`Engine::from_json`] and
//! [`Engine::from_snapshot`], word for word. A snapshot packed with
//! [`crate::packed::pack`] is read back into the same form, without JSON,
//! by [`ParsedSnapshot::from_packed`].
//!
//! ```
//! use bunting_core::{Engine, FlagType, ParsedSnapshot};
//! let doc = r#"{"schemaVersion": 1, "environment": "dev", "version": 1,
//!   "generatedAt": "2026-11-25T00:00:00Z",
//!   "flags": [{"key": "rate", "type": "number", "variants": {"low": 0.5, "high": 2},
//!     "offVariant": "low", "rules": [{"condition": "now > \"2026-12-01T00:00:00Z\"",
//!     "serve": {"variant": "high"}}], "fallthrough": {"variant": "low"}}]}"#;
//! let parsed = ParsedSnapshot::parse(doc).unwrap();
//! let (engine, problems) = Engine::from_parsed_lenient(&parsed);
//! assert!(problems.is_empty());
//! assert_eq!(engine.flag_keys().collect::<Vec<_>>(), ["rate"]);
//! let flag = parsed.flags().next().unwrap();
//! assert_eq!((flag.key(), flag.flag_type()), ("rate", FlagType::Number));
//! assert_eq!(flag.variants().map(|(name, _)| name).collect::<Vec<_>>(), ["high", "low"]);
//! assert_eq!(flag.rule_conditions().collect::<Vec<_>>(), [r#"now > "2026-12-01T00:00:00Z""#]);
//! assert_eq!(parsed.checksum(), None);
//! ```
//!
//! [`Engine`]: crate::Engine
//! [`Engine::from_json`]: crate::Engine::from_json
//! [`Engine::from_snapshot`]: crate::Engine::from_snapshot
//! [`Engine::from_parsed`]: crate::Engine::from_parsed
//! [`Engine::from_parsed_lenient`]: crate::Engine::from_parsed_lenient

use serde_json::Value;

use crate::borrowed;
use crate::model::{self, FlagType};
use crate::snapshot::{LoadError, syntax_error};

/// A snapshot document parsed once, its strings borrowed from the text
/// where they hold no escape. Load an engine from it with
/// [`crate::Engine::from_parsed`] or [`crate::Engine::from_parsed_lenient`].
#[derive(Debug)]
pub struct ParsedSnapshot<'a> {
    pub(crate) snapshot: borrowed::Snapshot<'a>,
    /// Whether the declared checksum is known to match the content, so
    /// loading need not hash it again: set by a packed snapshot whose
    /// digest holds (see [`crate::packed`]).
    pub(crate) checksum_verified: bool,
}

impl<'a> ParsedSnapshot<'a> {
    /// Parses a snapshot document. Fails as
    /// [`crate::snapshot::parse_json`] does, with the same message; the
    /// document is only validated when an engine is loaded from it.
    pub fn parse(json: &'a str) -> Result<ParsedSnapshot<'a>, LoadError> {
        let snapshot = borrowed::Snapshot::parse(json).map_err(syntax_error)?;
        Ok(ParsedSnapshot {
            snapshot,
            checksum_verified: false,
        })
    }

    /// Reads a snapshot packed by [`crate::packed::pack`], its strings
    /// borrowed from `bytes`: the same snapshot as the document it was
    /// packed from, so the same engine, problems, checksum and flags.
    /// Fails, never panics, on bytes that are not a whole packed snapshot
    /// of this format version.
    pub fn from_packed(bytes: &'a [u8]) -> Result<ParsedSnapshot<'a>, crate::packed::PackedError> {
        crate::packed::read(bytes)
    }

    /// Views an owned snapshot the same way, copying no string.
    pub fn of(snapshot: &'a model::Snapshot) -> ParsedSnapshot<'a> {
        ParsedSnapshot {
            snapshot: borrowed::Snapshot::of(snapshot),
            checksum_verified: false,
        }
    }

    /// The snapshot's environment, as written.
    pub fn environment(&self) -> &str {
        &self.snapshot.environment
    }

    /// The snapshot's version.
    pub fn version(&self) -> u64 {
        self.snapshot.version
    }

    /// The `checksum` the document declares (`sha256:` + hex), if any;
    /// checked when an engine is loaded from it.
    pub fn checksum(&self) -> Option<&str> {
        self.snapshot.checksum.as_deref()
    }

    /// The flags, in document order (a key written twice appears twice).
    pub fn flags(&self) -> impl ExactSizeIterator<Item = ParsedFlag<'_>> {
        self.snapshot.flags.iter().map(|flag| ParsedFlag { flag })
    }

    /// The condition texts of the segments that have one, in document
    /// order.
    pub fn segment_conditions(&self) -> impl Iterator<Item = &str> {
        self.snapshot
            .segments
            .iter()
            .filter_map(|s| s.condition.as_deref())
    }

    /// The borrowed form the engine compiles.
    pub(crate) fn borrowed(&self) -> &borrowed::Snapshot<'a> {
        &self.snapshot
    }
}

/// One flag of a [`ParsedSnapshot`], as written (not yet validated).
#[derive(Debug, Clone, Copy)]
pub struct ParsedFlag<'p> {
    flag: &'p borrowed::Flag<'p>,
}

impl<'p> ParsedFlag<'p> {
    /// The flag's key.
    pub fn key(self) -> &'p str {
        &self.flag.key
    }

    /// The flag's declared type.
    pub fn flag_type(self) -> FlagType {
        self.flag.flag_type
    }

    /// `(name, value)` of every variant, sorted by name (a name written
    /// twice keeps its last value, as in the model).
    pub fn variants(self) -> impl Iterator<Item = (&'p str, &'p Value)> {
        self.flag.variants.iter()
    }

    /// The condition text of every rule, in rule order.
    pub fn rule_conditions(self) -> impl Iterator<Item = &'p str> {
        self.flag.rules.iter().map(|r| &*r.condition)
    }

    /// The `at` text (RFC 3339, unparsed) of every step of the flag's
    /// scheduled serves: the rules' in rule order, then the fallthrough's.
    pub fn schedule_steps(self) -> impl Iterator<Item = &'p str> {
        let flag = self.flag;
        flag.rules
            .iter()
            .map(|r| &r.serve)
            .chain([&flag.fallthrough])
            .filter_map(|serve| match serve {
                borrowed::Serve::Schedule(s) => Some(s.steps.iter().map(|step| &*step.at)),
                _ => None,
            })
            .flatten()
    }

    /// The borrowed form, for the catalog.
    pub(crate) fn borrowed(self) -> &'p borrowed::Flag<'p> {
        self.flag
    }
}
