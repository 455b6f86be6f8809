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

    /// A condition of an already compiled expression (a packed
    /// snapshot's precompiled rule, [`crate::packed`]).
    pub(crate) fn from_expr(expr: ast::Expr) -> Condition {
        Condition { expr }
    }

    /// The compiled expression.
    #[cfg(feature = "rule-parser")]
    pub(crate) fn expr(&self) -> &ast::Expr {
        &self.expr
    }

    /// Evaluates against a full environment.
    pub fn eval(&self, env: &Env<'_>) -> bool {
        eval(&self.expr, env)
    }

    /// Whether the condition reads the evaluation time (`now`): only such
    /// a condition can change its answer as time passes (a `datetime(…)`
    /// of an attribute or literal cannot). `segment(…)` references are not
    /// followed.
    ///
    /// ```
    /// use bunting_core::rules::Condition;
    /// assert!(Condition::parse(r#"now > "2026-12-01T00:00:00Z""#).unwrap().reads_now());
    /// assert!(Condition::parse(r#"plan == "pro" || datetime(now) < 5"#).unwrap().reads_now());
    /// assert!(!Condition::parse(r#"known == "snow" && datetime(at) > "2026-12-01T00:00:00Z""#).unwrap().reads_now());
    /// ```
    pub fn reads_now(&self) -> bool {
        self.expr.reads_now()
    }

    /// Calls `f` with the name of every top-level context attribute the
    /// condition reads (`"app"` for `app.version`), repeats included;
    /// `segment(…)` references are not followed.
    ///
    /// ```
    /// let c = bunting_core::rules::Condition::parse(r#"app.version >= "2.0" && exists(plan)"#).unwrap();
    /// let mut roots = Vec::new();
    /// c.for_each_root(&mut |r| roots.push(r.to_string()));
    /// assert_eq!(roots, ["app", "plan"]);
    /// ```
    pub fn for_each_root(&self, f: &mut dyn FnMut(&str)) {
        self.expr.for_each_path(&mut |p| {
            if let Some(root) = p.segments.first() {
                f(root);
            }
        });
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
    // A visible ASCII character at both ends: nothing to trim.
    let visible = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
    let bytes = s.as_bytes();
    let s = if visible(bytes.first()) && visible(bytes.last()) {
        s
    } else {
        s.trim()
    };
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    plain_version(s).or_else(|| parsed_version(s))
}

/// [`lenient_semver`] of a trimmed string without its `v`, through the
/// semver parser: as written, or with missing minor and patch numbers
/// padded with zeros.
fn parsed_version(s: &str) -> Option<semver::Version> {
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

/// The common case of [`lenient_semver`] without the parser: one to three
/// numbers without leading zeros (`2`, `2.4`, `2.4.1`), which is the
/// version those spell. Anything else (a pre-release, a build, a leading
/// zero, a number past `u64`) is `None`, left to the full parse.
#[inline]
fn plain_version(s: &str) -> Option<semver::Version> {
    let mut numbers = [0u64; 3];
    let mut part = 0;
    let mut digits = 0;
    let mut leading_zero = false;
    for &b in s.as_bytes() {
        match b {
            b'0'..=b'9' => {
                if digits == 0 {
                    leading_zero = b == b'0';
                } else if leading_zero {
                    return None;
                }
                numbers[part] = numbers[part]
                    .checked_mul(10)?
                    .checked_add(u64::from(b - b'0'))?;
                digits += 1;
            }
            b'.' if digits > 0 && part < 2 => {
                part += 1;
                digits = 0;
            }
            _ => return None,
        }
    }
    if digits == 0 {
        return None;
    }
    let [major, minor, patch] = numbers;
    Some(semver::Version::new(major, minor, patch))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// What `lenient_semver` answered before its fast paths: the reference.
    fn reference(s: &str) -> Option<semver::Version> {
        let s = s.trim();
        parsed_version(s.strip_prefix(['v', 'V']).unwrap_or(s))
    }

    #[test]
    fn the_fast_path_answers_as_the_parser() {
        for s in [
            "2.4.1",
            "2",
            "2.4",
            "0",
            "0.0.0",
            "02.1.1",
            "2.01",
            "2.4.1.5",
            "",
            ".",
            "2.",
            ".2",
            "v2.4.1",
            " 2.4.1 ",
            "2.4.1-beta",
            "2.4.1+b",
            "2.4-rc.1",
            "18446744073709551615.0.0",
            "18446744073709551616.0.0",
            "2.4.x",
            "2..4",
            "١.٢.٣",
            "+1.2.3",
            "-1.2.3",
            "\u{a0}2.4.1\u{a0}",
            "\t2.4\n",
            "2.4.1\u{2003}",
        ] {
            assert_eq!(lenient_semver(s), reference(s), "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_answers_as_the_parser_on_any_string(s in "[v0-9.+\\-a \\t\u{a0}]{0,14}") {
            proptest::prop_assert_eq!(lenient_semver(&s), reference(&s));
        }
    }
}
