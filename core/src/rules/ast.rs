//! The compiled form of a condition: literals are already typed (versions,
//! times and regular expressions parsed), segment names resolved to indices.

use regex_lite::Regex;

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Constant `true` / `false`.
    Const(bool),
    /// All must hold.
    And(Vec<Expr>),
    /// Any must hold.
    Or(Vec<Expr>),
    /// Negation.
    Not(Box<Expr>),
    /// A binary comparison.
    Cmp(CmpOp, Operand, Operand),
    /// A bare operand: holds when it is the boolean `true`.
    Truthy(Operand),
    /// `exists(path)`: the attribute is present and not null.
    Exists(Path),
    /// `segment("key")`, resolved to the segment's index.
    Segment(usize),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`: equal (numbers by value, versions and times by their order).
    Eq,
    /// `!=`: not equal.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `in`: the left value is a member of the right list.
    In,
    /// `not in`: the left scalar is not a member of the right list.
    NotIn,
    /// `contains`: a substring, or a list member.
    Contains,
    /// `starts_with`: a string prefix.
    StartsWith,
    /// `ends_with`: a string suffix.
    EndsWith,
    /// `matches`: the left string matches the right regular expression.
    Matches,
}

/// A value-producing term.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A context attribute.
    Path(Path),
    /// A literal.
    Lit(Lit),
    /// The evaluation time.
    Now,
    /// `semver(x)`: `x` read as a semantic version.
    Semver(Box<Operand>),
    /// `datetime(x)`: `x` read as an RFC 3339 time or Unix milliseconds.
    DateTime(Box<Operand>),
    /// `lower(x)`: `x` lower-cased.
    Lower(Box<Operand>),
}

/// What an operand is statically known to produce, for literal coercion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A semantic version: string literals compared with it are versions.
    Version,
    /// A time: string literals compared with it are RFC 3339 times.
    Time,
    /// Anything else: literals stay as written.
    Other,
}

impl Operand {
    /// The static kind of this operand.
    pub fn kind(&self) -> Kind {
        match self {
            Operand::Semver(_) | Operand::Lit(Lit::Version(_)) => Kind::Version,
            Operand::DateTime(_) | Operand::Now | Operand::Lit(Lit::Time(_)) => Kind::Time,
            _ => Kind::Other,
        }
    }
}

/// A dotted attribute path, pre-split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Path segments, e.g. `["app", "version"]`.
    pub segments: Vec<String>,
}

/// A typed literal.
#[derive(Debug, Clone)]
pub enum Lit {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number (JSON numbers are all `f64`).
    Num(f64),
    /// A string.
    Str(String),
    /// A list literal, `[…]`.
    List(Vec<Lit>),
    /// A string literal compared with a `semver(…)` operand, parsed once.
    Version(semver::Version),
    /// Unix milliseconds.
    Time(i64),
    /// The right side of `matches`, compiled once.
    Regex(Regex),
}
