//! Evaluation of compiled conditions against a JSON context.
//!
//! A missing attribute or a type mismatch makes a comparison false; nothing
//! here can fail or panic on any context.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::ast::{CmpOp, Expr, Lit, Operand, Path};
use super::lenient_semver;
use crate::context::{Attr, ContextRef, Found, Kind, same_bytes};
use crate::time::parse_rfc3339_ms;

/// What a condition is evaluated against.
pub struct Env<'a> {
    /// The evaluation context (a JSON object or a [`Context`](crate::Context)).
    pub context: ContextRef<'a>,
    /// Evaluation time, Unix milliseconds.
    pub now_ms: i64,
    /// Answers `segment(i)` for this context.
    pub segment: &'a dyn Fn(usize) -> bool,
}

/// Looks up a dotted path in a JSON value. Numeric segments index arrays.
///
/// ```
/// use bunting_core::rules::lookup;
/// let ctx = serde_json::json!({"app": {"version": "2.1.0"}, "tags": ["a", "b"]});
/// assert_eq!(lookup(&ctx, &["app", "version"]), Some(&serde_json::json!("2.1.0")));
/// assert_eq!(lookup(&ctx, &["tags", "1"]), Some(&serde_json::json!("b")));
/// assert_eq!(lookup(&ctx, &["app", "name"]), None);
/// ```
pub fn lookup<'a, S: AsRef<str>>(value: &'a Value, segments: &[S]) -> Option<&'a Value> {
    let mut cur = value;
    for seg in segments {
        let seg = seg.as_ref();
        cur = match cur {
            Value::Object(map) => get(map, seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// `map.get(key)`, faster on a context's few attributes: a small map is
/// scanned comparing lengths first, so about one key's bytes are compared
/// (the map's own search compares the bytes of every key sorted before
/// `key`). Keys are unique, so the answer is the same.
#[inline(always)]
pub(crate) fn get<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    if map.len() <= 16 {
        map.iter()
            .find(|(k, _)| same_bytes(k.as_bytes(), key.as_bytes()))
            .map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// A runtime value: borrowed from the context or a literal where possible.
#[derive(Debug, Clone)]
enum V<'a> {
    Missing,
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    Version(Cow<'a, semver::Version>),
    Time(i64),
    JsonList(&'a [Value]),
    LitList(&'a [Lit]),
    Regex(&'a regex_lite::Regex),
    Object,
}

fn from_json(v: &Value) -> V<'_> {
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(*b),
        Value::Number(n) => n.as_f64().map_or(V::Missing, V::Num),
        Value::String(s) => V::Str(Cow::Borrowed(s)),
        Value::Array(items) => V::JsonList(items),
        Value::Object(_) => V::Object,
    }
}

fn from_found(f: Found<'_>) -> V<'_> {
    match f {
        Found::Json(v) | Found::Attr(&Attr::Json(v)) => from_json(v),
        Found::Attr(Attr::Null) => V::Null,
        Found::Attr(Attr::Bool(b)) => V::Bool(*b),
        Found::Attr(Attr::Number(n)) => n.as_f64().map_or(V::Missing, V::Num),
        Found::Attr(Attr::Str(s)) => V::Str(Cow::Borrowed(s)),
        Found::Object => V::Object,
    }
}

fn from_lit(l: &Lit) -> V<'_> {
    match l {
        Lit::Null => V::Null,
        Lit::Bool(b) => V::Bool(*b),
        Lit::Num(n) => V::Num(*n),
        Lit::Str(s) => V::Str(Cow::Borrowed(s)),
        Lit::List(items) => V::LitList(items),
        Lit::Version(v) => V::Version(Cow::Borrowed(v)),
        Lit::Time(t) => V::Time(*t),
        Lit::Regex(r) => V::Regex(r),
    }
}

#[inline]
fn path_value<'a>(env: &Env<'a>, path: &Path) -> V<'a> {
    match env.context.kind() {
        // JSON, the hosts' form, reads its values directly.
        Kind::Json(context) => lookup(context, &path.segments).map_or(V::Missing, from_json),
        Kind::Own(_) => env
            .context
            .lookup(&path.segments)
            .map_or(V::Missing, from_found),
    }
}

fn operand<'a>(env: &Env<'a>, op: &'a Operand) -> V<'a> {
    match op {
        Operand::Path(p) => path_value(env, p),
        Operand::Lit(l) => from_lit(l),
        Operand::Now => V::Time(env.now_ms),
        Operand::Semver(inner) => match operand(env, inner) {
            V::Str(s) => lenient_semver(&s).map_or(V::Missing, |v| V::Version(Cow::Owned(v))),
            v @ V::Version(_) => v,
            _ => V::Missing,
        },
        Operand::DateTime(inner) => as_time(operand(env, inner)).map_or(V::Missing, V::Time),
        Operand::Lower(inner) => match operand(env, inner) {
            V::Str(s) => {
                crate::lowercase::lowercase(&s).map_or(V::Missing, |l| V::Str(Cow::Owned(l)))
            }
            _ => V::Missing,
        },
    }
}

fn as_time(v: V<'_>) -> Option<i64> {
    match v {
        V::Time(t) => Some(t),
        V::Str(s) => parse_rfc3339_ms(&s),
        V::Num(n) if n.is_finite() => Some(n as i64),
        _ => None,
    }
}

/// Brings a context value to the typed kind of the other side, so that
/// `semver(app.version) == min_version` compares versions.
fn align<'a>(a: V<'a>, b: V<'a>) -> (V<'a>, V<'a>) {
    match (a, b) {
        (a @ V::Version(_), V::Str(s)) => (
            a,
            lenient_semver(&s).map_or(V::Missing, |v| V::Version(Cow::Owned(v))),
        ),
        (V::Str(s), b @ V::Version(_)) => (
            lenient_semver(&s).map_or(V::Missing, |v| V::Version(Cow::Owned(v))),
            b,
        ),
        (a @ V::Time(_), b @ (V::Str(_) | V::Num(_))) => {
            (a, as_time(b).map_or(V::Missing, V::Time))
        }
        (a @ (V::Str(_) | V::Num(_)), b @ V::Time(_)) => {
            (as_time(a).map_or(V::Missing, V::Time), b)
        }
        pair => pair,
    }
}

fn equal(a: &V<'_>, b: &V<'_>) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Num(x), V::Num(y)) => x == y,
        (V::Str(x), V::Str(y)) => same_bytes(x.as_bytes(), y.as_bytes()),
        (V::Version(x), V::Version(y)) => x.cmp_precedence(y) == Ordering::Equal,
        (V::Time(x), V::Time(y)) => x == y,
        (V::JsonList(x), V::JsonList(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| json_equal(a, b))
        }
        (V::JsonList(x), V::LitList(y)) | (V::LitList(y), V::JsonList(x)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(j, l)| equal(&from_json(j), &from_lit(l)))
        }
        _ => false,
    }
}

/// Structural JSON equality in which numbers compare as floats (`1 == 1.0`),
/// as they do everywhere else in the language.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

fn order(a: &V<'_>, b: &V<'_>) -> Option<Ordering> {
    match (a, b) {
        (V::Num(x), V::Num(y)) => x.partial_cmp(y),
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Version(x), V::Version(y)) => Some(x.cmp_precedence(y)),
        (V::Time(x), V::Time(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Whether `align` can change a pair with `v` in it: only versions and
/// times bring the other side to their kind.
fn aligns(v: &V<'_>) -> bool {
    matches!(v, V::Version(_) | V::Time(_))
}

/// `equal` after `align`, without moving (or cloning) either side when
/// `align` would leave both as they are.
fn equal_aligned(needle: &V<'_>, item: V<'_>) -> bool {
    if aligns(needle) || aligns(&item) {
        let (n, i) = align(needle.clone(), item);
        equal(&n, &i)
    } else {
        equal(needle, &item)
    }
}

/// `align`, called only when it can change something.
#[inline]
fn align_if_needed<'a>(a: V<'a>, b: V<'a>) -> (V<'a>, V<'a>) {
    if aligns(&a) || aligns(&b) {
        align(a, b)
    } else {
        (a, b)
    }
}

fn member(needle: &V<'_>, list: &V<'_>) -> bool {
    match list {
        V::JsonList(items) => items.iter().any(|i| equal_aligned(needle, from_json(i))),
        V::LitList(items) => items.iter().any(|i| equal_aligned(needle, from_lit(i))),
        _ => false,
    }
}

fn compare(env: &Env<'_>, op: CmpOp, lhs: &Operand, rhs: &Operand) -> bool {
    let a = operand(env, lhs);
    let b = operand(env, rhs);
    if matches!(a, V::Missing) || matches!(b, V::Missing) {
        return false;
    }
    match op {
        CmpOp::In | CmpOp::NotIn => {
            // Only a scalar can be (or not be) an element: `not in` on null,
            // a list or an object is a type mismatch, hence false like `!=`.
            let scalar = !matches!(a, V::Null | V::JsonList(_) | V::LitList(_) | V::Object);
            if !matches!(b, V::JsonList(_) | V::LitList(_)) || (!scalar && op == CmpOp::NotIn) {
                return false;
            }
            member(&a, &b) == (op == CmpOp::In)
        }
        CmpOp::Contains => match (&a, &b) {
            (V::Str(h), V::Str(n)) => h.contains(n.as_ref()),
            (V::JsonList(_) | V::LitList(_), _) => member(&b, &a),
            _ => false,
        },
        CmpOp::StartsWith | CmpOp::EndsWith => match (&a, &b) {
            (V::Str(h), V::Str(n)) => {
                let (h, n) = (h.as_bytes(), n.as_bytes());
                // `str::starts_with` and `ends_with` without `memcmp`.
                h.len() >= n.len()
                    && if op == CmpOp::StartsWith {
                        same_bytes(&h[..n.len()], n)
                    } else {
                        same_bytes(&h[h.len() - n.len()..], n)
                    }
            }
            _ => false,
        },
        CmpOp::Matches => match (&a, &b) {
            (V::Str(h), V::Regex(re)) => re.is_match(h),
            _ => false,
        },
        CmpOp::Eq | CmpOp::Ne => {
            let (a, b) = align_if_needed(a, b);
            if matches!(a, V::Missing | V::Object) || matches!(b, V::Missing | V::Object) {
                return false;
            }
            let same_kind = std::mem::discriminant(&a) == std::mem::discriminant(&b)
                || matches!(
                    (&a, &b),
                    (V::JsonList(_), V::LitList(_)) | (V::LitList(_), V::JsonList(_))
                );
            if !same_kind {
                // A type mismatch is false for `==` and `!=` alike.
                return false;
            }
            equal(&a, &b) == (op == CmpOp::Eq)
        }
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
            let (a, b) = align_if_needed(a, b);
            match order(&a, &b) {
                Some(o) => match op {
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::Le => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
                None => false,
            }
        }
    }
}

/// Evaluates a compiled condition.
pub fn eval(expr: &Expr, env: &Env<'_>) -> bool {
    match expr {
        Expr::Const(b) => *b,
        Expr::And(parts) => parts.iter().all(|p| eval(p, env)),
        Expr::Or(parts) => parts.iter().any(|p| eval(p, env)),
        Expr::Not(inner) => !eval(inner, env),
        Expr::Cmp(op, lhs, rhs) => compare(env, *op, lhs, rhs),
        Expr::Truthy(op) => matches!(operand(env, op), V::Bool(true)),
        Expr::Exists(path) => !matches!(path_value(env, path), V::Missing | V::Null),
        Expr::Segment(i) => (env.segment)(*i),
    }
}
