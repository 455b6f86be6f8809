//! The targeting rule language: a small expression language for conditions.
//!
//! ```
//! use bunting_core::rules::Condition;
//! let c = Condition::parse(r#"country in ["US", "CA"] && semver(app.version) >= "2.1.0""#).unwrap();
//! let ctx = serde_json::json!({"country": "CA", "app": {"version": "2.3"}});
//! assert!(c.matches(&ctx, 0));
//! let err = Condition::parse("country ==").unwrap_err();
//! assert_eq!((err.line, err.column), (1, 11));
//! ```
//!
//! The full language is documented in `docs/rules.md`.

pub mod ast;
pub(crate) mod eval;
mod lexer;
mod parser;

pub use eval::{Env, eval, lookup};
pub use parser::SegmentResolver;

use thiserror::Error;

/// Where something is in a condition's text: the 1-based line and column
/// of its first character and its length, all counted in characters.
///
/// ```
/// use bunting_core::rules::{Condition, Span};
/// let err = Condition::parse("plan == \"pro\" | beta").unwrap_err();
/// assert_eq!(err.span(), Span { line: 1, column: 15, length: 1 });
/// assert_eq!(err.span().to_string(), "1:15");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// 1-based line of the first character.
    pub line: u32,
    /// 1-based column of the first character, in characters.
    pub column: u32,
    /// How many characters it covers; 0 for the end of the input.
    pub length: u32,
}

impl std::fmt::Display for Span {
    /// `LINE:COLUMN`, as the rule language's errors start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A syntax or type error in a condition, with its 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{line}:{column}: expected {expected}, found {found}")]
pub struct ParseError {
    /// Line of the offending token.
    pub line: u32,
    /// Column (in characters) of the offending token.
    pub column: u32,
    /// Length (in characters) of the offending token; 0 at the end of input.
    pub length: u32,
    /// What was found there.
    pub found: String,
    /// What the parser expected instead.
    pub expected: String,
}

impl ParseError {
    /// Where the offending token is.
    pub fn span(&self) -> Span {
        Span {
            line: self.line,
            column: self.column,
            length: self.length,
        }
    }

    /// What is wrong, without the position: `expected …, found …`.
    ///
    /// ```
    /// let err = bunting_core::rules::Condition::parse("country ==").unwrap_err();
    /// assert_eq!(err.reason(), "expected an attribute, a literal, `now` or `(`, found end of input");
    /// assert_eq!(err.to_string(), format!("1:11: {}", err.reason()));
    /// ```
    pub fn reason(&self) -> String {
        format!("expected {}, found {}", self.expected, self.found)
    }
}

/// A parsed and compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    expr: ast::Expr,
}

impl Condition {
    /// Parses a condition that references no segments.
    pub fn parse(src: &str) -> Result<Self, ParseError> {
        Self::parse_with(src, &|_| {
            Err("no segment here: segments are unavailable in this condition".into())
        })
    }

    /// Parses a condition, resolving `segment("key")` through `segments`.
    pub fn parse_with(src: &str, segments: SegmentResolver<'_>) -> Result<Self, ParseError> {
        parser::parse(src, segments).map(|expr| Condition { expr })
    }

    /// Whether the condition holds for `context` at `now_ms` (Unix
    /// milliseconds), for a condition without segment references.
    pub fn matches<C: crate::EvaluationContext + ?Sized>(&self, context: &C, now_ms: i64) -> bool {
        self.eval(&Env {
            context: context.context_ref(),
            now_ms,
            segment: &|_| false,
        })
    }

    /// Evaluates against a full environment.
    pub fn eval(&self, env: &Env<'_>) -> bool {
        eval(&self.expr, env)
    }
}

/// Parses a semantic version leniently: a leading `v` is dropped and missing
/// minor/patch components count as 0 (`"2.1"` is `2.1.0`).
///
/// ```
/// use bunting_core::rules::lenient_semver;
/// assert_eq!(lenient_semver("v2.1").unwrap(), semver::Version::new(2, 1, 0));
/// assert!(lenient_semver("banana").is_none());
/// ```
pub fn lenient_semver(s: &str) -> Option<semver::Version> {
    let s = s.trim();
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts = core.split('.').count();
    if core.is_empty()
        || parts >= 3
        || !core
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    semver::Version::parse(&padded).ok()
}
