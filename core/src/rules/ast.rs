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

impl Expr {
    /// Calls `f` with every attribute path the expression reads (segment
    /// references excluded: a segment's own condition is walked apart).
    pub fn for_each_path(&self, f: &mut dyn FnMut(&Path)) {
        match self {
            Expr::Const(_) | Expr::Segment(_) => {}
            Expr::And(all) | Expr::Or(all) => all.iter().for_each(|e| e.for_each_path(f)),
            Expr::Not(e) => e.for_each_path(f),
            Expr::Cmp(_, a, b) => {
                a.for_each_path(f);
                b.for_each_path(f);
            }
            Expr::Truthy(o) => o.for_each_path(f),
            Expr::Exists(p) => f(p),
        }
    }
}

impl Expr {
    /// Whether the expression reads the evaluation time (`now`), so that
    /// its value may change from one instant to the next (segment
    /// references are not followed).
    pub fn reads_now(&self) -> bool {
        match self {
            Expr::Const(_) | Expr::Segment(_) | Expr::Exists(_) => false,
            Expr::And(all) | Expr::Or(all) => all.iter().any(Expr::reads_now),
            Expr::Not(e) => e.reads_now(),
            Expr::Cmp(_, a, b) => a.reads_now() || b.reads_now(),
            Expr::Truthy(o) => o.reads_now(),
        }
    }
}

impl Operand {
    /// Whether the operand is, or is computed from, `now`.
    pub fn reads_now(&self) -> bool {
        match self {
            Operand::Now => true,
            Operand::Path(_) | Operand::Lit(_) => false,
            Operand::Semver(o) | Operand::DateTime(o) | Operand::Lower(o) => o.reads_now(),
        }
    }

    /// Calls `f` with the attribute path the operand reads, if any.
    pub fn for_each_path(&self, f: &mut dyn FnMut(&Path)) {
        match self {
            Operand::Path(p) => f(p),
            Operand::Lit(_) | Operand::Now => {}
            Operand::Semver(o) | Operand::DateTime(o) | Operand::Lower(o) => o.for_each_path(f),
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

/// `text.parse::<f64>()`, the same answer for every text (Rust's grammar:
/// an optional sign, then `inf`, `infinity` or `nan` in any case, or
/// digits with an optional point and exponent), computed by `serde_json`'s
/// correctly rounded float parser instead of `core`'s: the edge worker
/// parses JSON anyway, and `core`'s parser brings 15 KB of code and tables
/// into its bundle. Rule numbers, the worker's settings and geolocation
/// read numbers through it.
///
/// ```
/// use bunting_core::rules::ast::parse_f64;
/// for text in ["1", "-2.5", "+.5", "5.", "1e3", "1E-3", "007", "inf", "-Infinity", "1e400", "-0"] {
///     assert_eq!(parse_f64(text).map(f64::to_bits), text.parse::<f64>().ok().map(f64::to_bits));
/// }
/// assert!(parse_f64("NaN").unwrap().is_nan());
/// assert_eq!(parse_f64("1.2.3"), None);
/// assert_eq!(parse_f64("."), None);
/// assert_eq!(parse_f64("1e"), None);
/// ```
pub fn parse_f64(text: &str) -> Option<f64> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = if rest.eq_ignore_ascii_case("inf") || rest.eq_ignore_ascii_case("infinity") {
        f64::INFINITY
    } else if rest.eq_ignore_ascii_case("nan") {
        f64::NAN
    } else {
        decimal(rest)?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// An unsigned decimal in Rust's float grammar, rewritten as a JSON number
/// (no leading zeros, digits on both sides of a point) for `serde_json`.
fn decimal(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits(0);
    let (frac, mut end) = match b.get(int_end) {
        Some(b'.') => {
            let e = digits(int_end + 1);
            (&s[int_end + 1..e], e)
        }
        _ => ("", int_end),
    };
    if int_end == 0 && frac.is_empty() {
        return None;
    }
    let mut exponent = "";
    if b.get(end).is_some_and(|c| c | 0x20 == b'e') {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let e = digits(end + 1 + sign);
        if e == end + 1 + sign {
            return None;
        }
        exponent = &s[end + 1..e];
        end = e;
    }
    if end != b.len() {
        return None;
    }
    // Already a JSON number (the usual case: "37.7749", "10", "2.5e3"):
    // read as it is, without a copy.
    let json_int = int_end == 1 || (int_end > 1 && b[0] != b'0');
    let json_point = b.get(int_end) != Some(&b'.') || !frac.is_empty();
    if json_int && json_point {
        return json_f64(s);
    }
    let int = s[..int_end].trim_start_matches('0');
    let mut json = String::with_capacity(s.len() + 3);
    json.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        json.push('.');
        json.push_str(frac);
    }
    if !exponent.is_empty() {
        json.push('e');
        json.push_str(exponent);
    }
    json_f64(&json)
}

/// A JSON number read by `Value`'s parser (already in the worker), not a
/// new `f64` one. A valid number it refuses is too large for an `f64`:
/// infinite, as Rust's parser says (too small ones are zero in both). Read
/// from bytes: the worker's other JSON reads are all from bytes, and
/// `from_str` would link a second instance of the parser.
fn json_f64(json: &str) -> Option<f64> {
    match serde_json::from_slice::<serde_json::Value>(json.as_bytes()) {
        Ok(v) => v.as_f64(),
        Err(_) => Some(f64::INFINITY),
    }
}

#[cfg(test)]
mod parse_f64_tests {
    use super::parse_f64;

    fn same(text: &str) {
        let ours = parse_f64(text);
        let rust = text.parse::<f64>().ok();
        match (ours, rust) {
            (Some(a), Some(b)) if a.is_nan() && b.is_nan() => {}
            _ => assert_eq!(ours.map(f64::to_bits), rust.map(f64::to_bits), "{text:?}"),
        }
    }

    #[test]
    fn answers_as_rusts_parser() {
        for text in [
            "",
            "-",
            "+",
            ".",
            "-.",
            "e",
            "1e",
            "1e+",
            "1e-",
            "e5",
            ".e5",
            "1.e5",
            ".5e-3",
            "0",
            "-0",
            "+0",
            "00",
            "0.0",
            "-0.0e0",
            "1",
            "12345678901234567890",
            "123456789012345678901234567890",
            "18446744073709551615",
            "18446744073709551616",
            "9007199254740993",
            "0.1",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "2.2250738585072011e-308",
            "4.9e-324",
            "2.4e-324",
            "2.5e-324",
            "1e-400",
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.7976931348623159e308",
            "1e308",
            "1e309",
            "1e99999999999999999999",
            "0e99999999999999999999",
            "-1e400",
            "0.000000000000000000000000000000000000001e39",
            "1.5 ",
            " 1.5",
            "1_0",
            "0x10",
            "1.2.3",
            "1e5e5",
            "--1",
            "+-1",
            "inf",
            "INF",
            "-inf",
            "+Infinity",
            "infinity",
            "infinit",
            "nan",
            "NaN",
            "-nan",
            "+nan",
            "nan1",
            "5.",
            "-5.",
            ".5",
            "-.5",
            "007.50",
            "1E3",
            "1e+03",
            "1e-03",
            "٣",
        ] {
            same(text);
        }
        // Pseudo-random texts of the characters numbers are made of.
        let alphabet = b"0123456789.eE+-0123456789";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let text: String = (0..len)
                .map(|i| alphabet[((x >> (i * 5)) % alphabet.len() as u64) as usize] as char)
                .collect();
            same(&text);
        }
        // Every kind of finite double, as Rust writes it.
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            for text in [
                format!("{f}"),
                format!("{f:e}"),
                format!("{f:.3e}"),
                format!("{f:.20}"),
            ] {
                same(&text);
            }
        }
        // Long mantissas near rounding boundaries.
        for i in 0..2000u64 {
            same(&format!("{}.{:0>30}e-{}", i, i * 7919, i % 330));
            same(&format!("{}e{}", i * 1_000_003, i % 320));
        }
    }
}
