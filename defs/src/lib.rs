//! # bunting-defs
//!
//! The flag-definition format: a definition file people edit (YAML or JSON),
//! its conversion into one sealed [`Snapshot`](bunting_core::Snapshot) per
//! environment, and the writer that produces such files ([`write`](mod@write)). Pure
//! Rust with no I/O: the `bunting` CLI and the origin read files and stores,
//! this crate only text.
//!
//! The format is documented completely in `docs/flags.md`; in short:
//!
//! ```yaml
//! environments: [development, production]
//! segments:
//!   staff: { included: [u-1], condition: 'email ends_with "@bunting.dev"' }
//! layers:
//!   checkout: { salt: checkout-2026 }
//! flags:
//!   new-checkout:
//!     type: boolean
//!     description: One-page checkout
//!     variants: { on: true, off: false }
//!     offVariant: off
//!     default:                 # environments not listed below
//!       fallthrough: off
//!     environments:
//!       production:
//!         rules:
//!           - id: staff
//!             condition: segment("staff")
//!             serve: on
//!       development: { fallthrough: on }
//! ```
//!
//! Per flag and environment the configuration (`enabled`, `prerequisites`,
//! `rules`, `fallthrough`) is the environment's block under `environments`,
//! field by field over the flag's `default` block. An environment with
//! neither is **off**: the flag is in its snapshot, disabled, serving
//! `offVariant`.
//!
//! Loading ([`load`]) reports every problem of the file at once, each with
//! its line and column ([`Diagnostic`]): syntax errors, unknown or mistyped
//! fields, and every problem the engine's own validation finds in any
//! environment's snapshot (rule-language errors point at the offending
//! character inside the condition).
//!
//! ```
//! use bunting_defs::{load, SnapshotOptions, Syntax};
//! let project = load(r#"
//! environments: [production]
//! flags:
//!   dark-mode:
//!     type: boolean
//!     variants: {on: true, off: false}
//!     offVariant: off
//!     environments:
//!       production: {fallthrough: on}
//! "#, Syntax::Yaml).unwrap();
//! let snapshot = project.snapshot("production", &SnapshotOptions::new(7, "2026-11-25T10:00:00Z")).unwrap();
//! assert_eq!(snapshot.version, 7);
//! assert!(snapshot.checksum.is_some());
//! let engine = bunting_core::Engine::from_snapshot(&snapshot).unwrap();
//! let r = engine.evaluate("dark-mode", &serde_json::json!({}), 0);
//! assert_eq!(r.variant.as_deref(), Some("on"));
//! ```

mod convert;
mod diag;
mod read;
pub mod tree;
pub mod write;

use bunting_core::FlagType;
use serde_json::Value as Json;
use thiserror::Error;

pub use convert::SnapshotOptions;
pub use diag::{Diagnostic, Snippet, Subject};
pub use tree::{Pos, Syntax};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it starts in the file.
    pub pos: Pos,
}

/// A whole definition file.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionFile {
    /// The environments, in file order (`environments: [...]`).
    pub environments: Vec<Spanned<String>>,
    /// Segments, in file order.
    pub segments: Vec<SegmentDef>,
    /// Experiment layers, in file order.
    pub layers: Vec<LayerDef>,
    /// Flags, in file order.
    pub flags: Vec<FlagDef>,
}

/// A condition in the rule language, as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionDef {
    /// The condition's text.
    pub text: String,
    /// Where the scalar holding it starts.
    pub pos: Pos,
    /// File position of every character of the text, as far as traced.
    chars: Vec<Pos>,
}

impl ConditionDef {
    /// The file position of line `line`, column `column` (1-based, in
    /// characters) of the condition's text, as the rule-language parser
    /// reports errors.
    pub fn position_of(&self, line: u32, column: u32) -> Pos {
        tree::map_offset(&self.text, &self.chars, self.pos, line, column)
    }
}

/// A segment: a reusable named condition, optionally different per
/// environment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentDef {
    /// Key, referenced as `segment("key")`.
    pub key: Spanned<String>,
    /// Human description.
    pub description: Option<String>,
    /// Membership in every environment.
    pub base: SegmentBody,
    /// Per-environment overrides: each field given replaces the base's.
    pub environments: Vec<(Spanned<String>, SegmentBody)>,
    /// Whether the segment had structural errors (its engine-level checks
    /// are then not reported, except condition syntax).
    pub broken: bool,
}

/// A segment's membership: keys always in, keys never in, a condition.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentBody {
    /// Targeting keys always in the segment.
    pub included: Option<Vec<String>>,
    /// Targeting keys never in the segment (wins over everything).
    pub excluded: Option<Vec<String>>,
    /// Condition matching further members; may not use `segment(…)`.
    pub condition: Option<ConditionDef>,
}

/// An experiment layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerDef {
    /// Key, referenced by flags' `layer.key`.
    pub key: Spanned<String>,
    /// Human description (not published).
    pub description: Option<String>,
    /// Bucketing salt; defaults to the key.
    pub salt: Option<String>,
    /// Context attribute to bucket by; defaults to `targetingKey`.
    pub bucket_by: Option<Spanned<String>>,
    /// Whether the layer had structural errors.
    pub broken: bool,
}

/// One flag across all environments.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagDef {
    /// Unique key.
    pub key: Spanned<String>,
    /// Type of every variant value.
    pub flag_type: FlagType,
    /// What the flag is for.
    pub description: Option<String>,
    /// Who owns it.
    pub owner: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// Named variants in file order, each with its value's position.
    pub variants: Vec<(Spanned<String>, Spanned<Json>)>,
    /// Where `variants` is.
    pub variants_pos: Pos,
    /// Variant served when the flag is off.
    pub off_variant: Spanned<String>,
    /// Bucketing salt; defaults to the key.
    pub salt: Option<String>,
    /// Context attribute to bucket by; defaults to `targetingKey`.
    pub bucket_by: Option<Spanned<String>>,
    /// Share of an experiment layer, the same in every environment.
    pub layer: Option<LayerSlotDef>,
    /// Available to client-side SDKs (`clientSide`, default `false`): client
    /// SDK keys evaluate only flags marked so.
    pub client_side: bool,
    /// Configuration of the environments not listed in `environments`, and
    /// the base the listed ones override field by field.
    pub default: Option<EnvConfig>,
    /// Per-environment configuration.
    pub environments: Vec<(Spanned<String>, EnvConfig)>,
    /// Whether the flag had structural errors (its engine-level checks are
    /// then not reported, except condition syntax).
    pub broken: bool,
}

/// A flag's share `[start, end)` (percent) of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSlotDef {
    /// Where the slot is.
    pub pos: Pos,
    /// Layer key.
    pub key: Spanned<String>,
    /// Inclusive lower bound, percent.
    pub start: f64,
    /// Exclusive upper bound, percent.
    pub end: f64,
}

/// A flag's configuration in an environment (or its `default`). Every field
/// is optional; see [`FlagDef::default`] for how they combine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EnvConfig {
    /// Where the block is.
    pub pos: Pos,
    /// `false` is the kill switch. Default `true` (for a configured
    /// environment).
    pub enabled: Option<Spanned<bool>>,
    /// Flags that must serve a given variant for this one to be on.
    pub prerequisites: Option<Spanned<Vec<PrerequisiteDef>>>,
    /// Targeting rules, tried in order.
    pub rules: Option<Spanned<Vec<RuleDef>>>,
    /// What to serve when no rule matches. Default: `offVariant`.
    pub fallthrough: Option<ServeDef>,
}

/// A prerequisite: flag `flag` must serve `variant`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrerequisiteDef {
    /// Where it is.
    pub pos: Pos,
    /// The prerequisite flag's key.
    pub flag: Spanned<String>,
    /// The variant it must serve.
    pub variant: Spanned<String>,
}

/// A targeting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    /// Where it is.
    pub pos: Pos,
    /// Stable id reported as `ruleId`; defaults to `rule-<index>`.
    pub id: Option<Spanned<String>>,
    /// Human description.
    pub description: Option<String>,
    /// The condition.
    pub condition: ConditionDef,
    /// What a matching context is served.
    pub serve: ServeDef,
}

/// What a rule or the fallthrough serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeDef {
    /// Where it is.
    pub pos: Pos,
    /// Which kind of serve.
    pub kind: ServeKind,
}

/// The three kinds of serve.
#[derive(Debug, Clone, PartialEq)]
pub enum ServeKind {
    /// One variant: `serve: on` or `serve: {variant: on}`.
    Variant(Spanned<String>),
    /// A weighted split, in order: `{rollout: [{variant, weight}, …]}` or
    /// `{rollout: {variant: weight, …}}`.
    Rollout(Spanned<Vec<ArmDef>>),
    /// A percentage ramp over time.
    Schedule(ScheduleDef),
}

/// One arm of a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmDef {
    /// Variant name.
    pub variant: Spanned<String>,
    /// Share in percent.
    pub weight: Spanned<f64>,
}

/// A schedule: `variant` for the first `percentage`% of users from each
/// step's time on, `otherwise` for the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDef {
    /// Where it is.
    pub pos: Pos,
    /// Variant served inside the percentage.
    pub variant: Spanned<String>,
    /// Variant served to everybody else.
    pub otherwise: Spanned<String>,
    /// The steps, in file order (must increase in time).
    pub steps: Spanned<Vec<StepDef>>,
}

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDef {
    /// Where it is.
    pub pos: Pos,
    /// RFC 3339 time the step takes effect.
    pub at: Spanned<String>,
    /// Percentage of users from then on.
    pub percentage: Spanned<f64>,
}

/// Why a snapshot could not be made.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SnapshotError {
    /// The environment is not declared in the file.
    #[error("unknown environment {env:?} (the file declares: {})", known.join(", "))]
    UnknownEnvironment {
        /// The environment asked for.
        env: String,
        /// The declared ones.
        known: Vec<String>,
    },
    /// `generatedAt` is not an RFC 3339 time.
    #[error("generatedAt {0:?} is not an RFC 3339 time")]
    GeneratedAt(String),
    /// The definitions do not make a valid snapshot.
    #[error("the definitions have {} problem(s)", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// Reads, checks and validates a definition file: syntax, structure, and the
/// engine's validation of every environment's snapshot. Returns every
/// problem found, sorted by position, or the project when there are none.
pub fn load(src: &str, syntax: Syntax) -> Result<DefinitionFile, Vec<Diagnostic>> {
    let (project, mut diagnostics) = read(src, syntax)?;
    diagnostics.extend(project.check());
    if diagnostics.is_empty() {
        Ok(project)
    } else {
        diagnostics.sort_by_key(|d| d.pos);
        Err(diagnostics)
    }
}

/// Reads a definition file without the engine-level checks: returns the
/// project (best effort, with what could be read) and the structural
/// problems, or only the syntax error when the file cannot be parsed.
fn read(src: &str, syntax: Syntax) -> Result<(DefinitionFile, Vec<Diagnostic>), Vec<Diagnostic>> {
    let doc = tree::parse(src, syntax).map_err(|e| {
        vec![Diagnostic {
            pos: e.pos,
            subject: None,
            environments: Vec::new(),
            message: e.message,
            snippet: None,
        }]
    })?;
    Ok(read::project(&doc))
}

impl DefinitionFile {
    /// The environment names, in file order.
    pub fn environment_names(&self) -> impl Iterator<Item = &str> {
        self.environments.iter().map(|e| e.value.as_str())
    }

    /// Runs the engine's validation on every environment's snapshot and maps
    /// each problem back to the file (see [`Diagnostic`]). A problem that
    /// shows in several environments is reported once, naming them (or none,
    /// when it shows in all).
    pub fn check(&self) -> Vec<Diagnostic> {
        convert::check(self)
    }

    /// The sealed snapshot of environment `env`, validated by the engine.
    pub fn snapshot(
        &self,
        env: &str,
        options: &SnapshotOptions,
    ) -> Result<bunting_core::Snapshot, SnapshotError> {
        convert::snapshot(self, env, options)
    }
}
