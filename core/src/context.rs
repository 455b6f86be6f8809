//! Evaluation contexts of bunting's own, built without JSON.
//!
//! [`Engine::evaluate`](crate::Engine::evaluate) takes any
//! [`EvaluationContext`]: a `serde_json::Value` (what OFREP and the hosts
//! receive) or a [`Context`], which a Rust program builds from the strings it
//! already holds. A `Context` borrows its names and string values and keeps
//! up to eight attributes (nested ones included) inline, so building a
//! typical one allocates nothing; its answers are the JSON form's, attribute
//! for attribute ([`Context::to_json`] gives that form).
//!
//! ```
//! use bunting_core::Context;
//! use serde_json::json;
//! let user_key = String::from("user-42");
//! let ctx = Context::new()
//!     .with_targeting_key(&user_key)
//!     .with("plan", "pro")
//!     .with("seats", 12)
//!     .with_object("app", |app| {
//!         app.set("version", "2.4.1");
//!     });
//! assert_eq!(
//!     ctx.to_json(),
//!     json!({"targetingKey": "user-42", "plan": "pro", "seats": 12, "app": {"version": "2.4.1"}})
//! );
//! ```

use std::borrow::Cow;

use serde_json::{Number, Value};
use smallvec::SmallVec;

/// The name of the targeting key attribute, as in OpenFeature.
const TARGETING_KEY: &str = "targetingKey";

/// Attributes kept inline before a context allocates.
const INLINE: usize = 8;

/// The parent of a top-level attribute.
const TOP: u32 = u32::MAX;
/// The parent of an attribute replaced since: never found again.
const REPLACED: u32 = u32::MAX - 1;

/// An evaluation context: named attributes, their values borrowed where
/// they are strings, objects nested in it. Names are unique within an
/// object: setting a name again replaces its value (and an object's
/// members), as a JSON object's later member does.
///
/// Attributes live in one flat list, each knowing its object, so nested
/// objects cost no allocation of their own.
#[derive(Debug, Clone, Default)]
pub struct Context<'a> {
    entries: SmallVec<[Entry<'a>; INLINE]>,
}

/// One attribute: its object ([`TOP`], or the index of an object entry),
/// name and value (`None`: an object, whose members name it as parent).
#[derive(Debug, Clone)]
pub(crate) struct Entry<'a> {
    parent: u32,
    name: &'a str,
    value: Option<Attr<'a>>,
}

/// The value of a [`Context`] attribute (objects are made with
/// [`Context::with_object`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Attr<'a> {
    /// JSON `null`: present, but `exists(...)` is false for it.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, spelled (when it buckets) as JSON spells it.
    Number(Number),
    /// A string.
    Str(Cow<'a, str>),
    /// Any JSON value, e.g. a list for `in` and `contains`.
    Json(&'a Value),
}

/// An object being filled in, inside a [`Context`]
/// (see [`Context::with_object`]).
#[derive(Debug)]
pub struct Object<'c, 'a> {
    context: &'c mut Context<'a>,
    id: u32,
}

// The builders and `put`/`find` are `#[inline(always)]`: a chain such as
// `Context::new().with_targeting_key(k).with("plan", p)` moves the
// 392-byte context at each step, and LLVM elides those moves only when
// the context's address reaches no call (an out-of-line `put` or `find`
// kept three `memcpy`s per build, 30 % of building a context).
impl<'a> Context<'a> {
    /// An empty context.
    #[inline(always)]
    pub fn new() -> Self {
        Context::default()
    }

    /// Sets attribute `name` to `value`, replacing an earlier value.
    #[inline(always)]
    pub fn set(&mut self, name: &'a str, value: impl Into<Attr<'a>>) -> &mut Self {
        self.put(TOP, name, Some(value.into()));
        self
    }

    /// This context with attribute `name` set to `value`.
    #[inline(always)]
    pub fn with(mut self, name: &'a str, value: impl Into<Attr<'a>>) -> Self {
        self.set(name, value);
        self
    }

    /// This context with `targetingKey` set to `key`.
    #[inline(always)]
    pub fn with_targeting_key(self, key: impl Into<Cow<'a, str>>) -> Self {
        self.with(TARGETING_KEY, Attr::Str(key.into()))
    }

    /// Sets attribute `name` to an object whose members `fill` sets.
    #[inline(always)]
    pub fn set_object(
        &mut self,
        name: &'a str,
        fill: impl FnOnce(&mut Object<'_, 'a>),
    ) -> &mut Self {
        let id = self.put(TOP, name, None);
        fill(&mut Object { context: self, id });
        self
    }

    /// This context with attribute `name` an object whose members `fill` sets.
    #[inline(always)]
    pub fn with_object(mut self, name: &'a str, fill: impl FnOnce(&mut Object<'_, 'a>)) -> Self {
        self.set_object(name, fill);
        self
    }

    /// Removes top-level attribute `name` (and an object's members);
    /// whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let found = self.find(TOP, name);
        if let Some(i) = found {
            self.entries[i].parent = REPLACED;
        }
        found.is_some()
    }

    /// The value of top-level attribute `name` (`None` for a missing one
    /// and for an object).
    pub fn get(&self, name: &str) -> Option<&Attr<'a>> {
        self.find(TOP, name)
            .and_then(|i| self.entries[i].value.as_ref())
    }

    /// Whether the context has no attribute.
    pub fn is_empty(&self) -> bool {
        !self.entries.iter().any(|e| e.parent == TOP)
    }

    /// The same context as a JSON object, which evaluates identically.
    pub fn to_json(&self) -> Value {
        self.object_json(TOP)
    }

    fn object_json(&self, parent: u32) -> Value {
        Value::Object(
            self.entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.parent == parent)
                .map(|(i, e)| {
                    let value = match &e.value {
                        Some(v) => v.to_json(),
                        None => self.object_json(i as u32),
                    };
                    (e.name.to_owned(), value)
                })
                .collect(),
        )
    }

    /// Adds `name` under `parent`, retiring an earlier attribute of that
    /// name (and so its members); returns the new entry's index.
    #[inline(always)]
    fn put(&mut self, parent: u32, name: &'a str, value: Option<Attr<'a>>) -> u32 {
        if let Some(old) = self.find(parent, name) {
            self.entries[old].parent = REPLACED;
        }
        self.entries.push(Entry {
            parent,
            name,
            value,
        });
        (self.entries.len() - 1) as u32
    }

    /// The index of the live attribute `name` under `parent`.
    #[inline(always)]
    fn find(&self, parent: u32, name: &str) -> Option<usize> {
        find(&self.entries, parent, name)
    }
}

/// The index of the live attribute `name` under `parent` in `entries`.
#[inline]
fn find(entries: &[Entry<'_>], parent: u32, name: &str) -> Option<usize> {
    // Lengths first: they tell most names apart, and most entries are
    // top-level.
    entries
        .iter()
        .position(|e| e.name.len() == name.len() && e.parent == parent && same(e.name, name))
}

impl<'a> Object<'_, 'a> {
    /// Sets member `name` to `value`, replacing an earlier value.
    #[inline(always)]
    pub fn set(&mut self, name: &'a str, value: impl Into<Attr<'a>>) -> &mut Self {
        self.context.put(self.id, name, Some(value.into()));
        self
    }

    /// Sets member `name` to an object whose members `fill` sets.
    #[inline(always)]
    pub fn set_object(
        &mut self,
        name: &'a str,
        fill: impl FnOnce(&mut Object<'_, 'a>),
    ) -> &mut Self {
        let id = self.context.put(self.id, name, None);
        fill(&mut Object {
            context: self.context,
            id,
        });
        self
    }
}

impl serde::Serialize for Context<'_> {
    /// Writes the JSON form ([`Context::to_json`]) without building it.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ObjectView {
            entries: &self.entries,
            parent: TOP,
        }
        .serialize(serializer)
    }
}

/// The members of one object of a context, serialized as a JSON object.
struct ObjectView<'c, 'a> {
    entries: &'c [Entry<'a>],
    parent: u32,
}

impl serde::Serialize for ObjectView<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let members = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.parent == self.parent);
        let mut map = serializer.serialize_map(Some(members.clone().count()))?;
        for (i, e) in members {
            match &e.value {
                Some(v) => map.serialize_entry(e.name, v)?,
                None => map.serialize_entry(
                    e.name,
                    &ObjectView {
                        entries: self.entries,
                        parent: i as u32,
                    },
                )?,
            }
        }
        map.end()
    }
}

impl serde::Serialize for Attr<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Attr::Null => serializer.serialize_unit(),
            Attr::Bool(b) => serializer.serialize_bool(*b),
            Attr::Number(n) => n.serialize(serializer),
            Attr::Str(s) => serializer.serialize_str(s),
            Attr::Json(v) => v.serialize(serializer),
        }
    }
}

impl PartialEq for Context<'_> {
    /// Equal when their JSON forms are.
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl Attr<'_> {
    /// The same value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Attr::Null => Value::Null,
            Attr::Bool(b) => Value::Bool(*b),
            Attr::Number(n) => Value::Number(n.clone()),
            Attr::Str(s) => Value::String(s.to_string()),
            Attr::Json(v) => (*v).clone(),
        }
    }
}

/// Name equality, lengths first (most names differ in length).
#[inline]
fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// `a == b` for the short strings of the engine (attribute names, flag
/// keys, variant names, context values), without a call to `memcmp` up
/// to 16 bytes: lengths first, then at most two overlapping words. In
/// WASM, `memcmp` is compiler_builtins' loop over single bytes, each
/// iteration an epoch check in wasmtime, and was most of an attribute
/// lookup; natively the inline words are a little faster than the call.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    // Natively, `memcmp` is vectorized: worth its call past 16 bytes.
    #[cfg(not(target_arch = "wasm32"))]
    if a.len() > 16 {
        return a == b;
    }
    words_equal(a, b)
}

/// `a == b` by whole words: lengths first, then at most two overlapping
/// words up to 16 bytes, or words in a loop.
#[inline]
fn words_equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        0 => true,
        // Bytes 0, n/2 and n-1 cover every byte of 1 to 3.
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        // The first and last four bytes, overlapping.
        4..=8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        // The first and last eight bytes, overlapping.
        9..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => {
            // Eight bytes at a time, then the last eight (overlapping).
            let mut at = 0;
            while at + 8 < n {
                if word(a, at) != word(b, at) {
                    return false;
                }
                at += 8;
            }
            word(a, n - 8) == word(b, n - 8)
        }
    }
}

impl<'a> From<&'a str> for Attr<'a> {
    fn from(s: &'a str) -> Self {
        Attr::Str(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a String> for Attr<'a> {
    fn from(s: &'a String) -> Self {
        Attr::Str(Cow::Borrowed(s))
    }
}

impl From<String> for Attr<'_> {
    fn from(s: String) -> Self {
        Attr::Str(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for Attr<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        Attr::Str(s)
    }
}

impl From<bool> for Attr<'_> {
    fn from(b: bool) -> Self {
        Attr::Bool(b)
    }
}

macro_rules! integer_attr {
    ($($t:ty),*) => {$(
        impl From<$t> for Attr<'_> {
            fn from(n: $t) -> Self {
                Attr::Number(Number::from(n))
            }
        }
    )*};
}
integer_attr!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);

impl From<f64> for Attr<'_> {
    /// A finite number; NaN and the infinities are `null`, as in JSON.
    fn from(n: f64) -> Self {
        Number::from_f64(n).map_or(Attr::Null, Attr::Number)
    }
}

impl From<Number> for Attr<'_> {
    fn from(n: Number) -> Self {
        Attr::Number(n)
    }
}

impl<'a> From<&'a Value> for Attr<'a> {
    fn from(v: &'a Value) -> Self {
        Attr::Json(v)
    }
}

impl<'a, T: Into<Attr<'a>>> From<Option<T>> for Attr<'a> {
    /// `None` is `null`.
    fn from(v: Option<T>) -> Self {
        v.map_or(Attr::Null, Into::into)
    }
}

/// What the engine evaluates against: JSON or a [`Context`]'s attributes.
#[derive(Debug, Clone, Copy)]
pub struct ContextRef<'a>(Kind<'a>);

/// The two kinds of [`ContextRef`]. A context's attributes are read as a
/// slice, which (unlike the inline vector holding them) lets a longer-lived
/// context stand for a shorter-lived one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind<'a> {
    Json(&'a Value),
    Own(&'a [Entry<'a>]),
}

/// Anything the engine can evaluate against.
pub trait EvaluationContext {
    /// The context, as the engine reads it.
    fn context_ref(&self) -> ContextRef<'_>;
}

impl EvaluationContext for Value {
    fn context_ref(&self) -> ContextRef<'_> {
        ContextRef(Kind::Json(self))
    }
}

impl EvaluationContext for Context<'_> {
    fn context_ref(&self) -> ContextRef<'_> {
        ContextRef(Kind::Own(&self.entries))
    }
}

impl<T: EvaluationContext + ?Sized> EvaluationContext for &T {
    fn context_ref(&self) -> ContextRef<'_> {
        (**self).context_ref()
    }
}

/// An attribute found by a path: in JSON or in a [`Context`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found<'a> {
    Json(&'a Value),
    Attr(&'a Attr<'a>),
    /// An object of a [`Context`].
    Object,
}

impl<'a> ContextRef<'a> {
    /// JSON or a context's attributes, for a caller with a path of its own
    /// for each.
    #[inline]
    pub(crate) fn kind(self) -> Kind<'a> {
        self.0
    }

    /// The value at a dotted path (numeric segments index JSON arrays).
    #[inline]
    pub(crate) fn lookup<S: AsRef<str>>(self, path: &[S]) -> Option<Found<'a>> {
        match self.0 {
            Kind::Json(v) => crate::rules::lookup(v, path).map(Found::Json),
            Kind::Own(entries) => {
                // Most paths are one name.
                if let [name] = path {
                    let at = find(entries, TOP, name.as_ref())?;
                    return Some(match &entries[at].value {
                        None => Found::Object,
                        Some(value) => Found::Attr(value),
                    });
                }
                let mut parent = TOP;
                for (i, seg) in path.iter().enumerate() {
                    let at = find(entries, parent, seg.as_ref())?;
                    match &entries[at].value {
                        None if i + 1 == path.len() => return Some(Found::Object),
                        None => parent = at as u32,
                        Some(value) if i + 1 == path.len() => return Some(Found::Attr(value)),
                        Some(Attr::Json(v)) => {
                            return crate::rules::lookup(v, &path[i + 1..]).map(Found::Json);
                        }
                        Some(_) => return None,
                    }
                }
                None
            }
        }
    }
}

impl<'a> Found<'a> {
    /// A string value.
    pub(crate) fn as_str(self) -> Option<&'a str> {
        match self {
            Found::Json(Value::String(s)) => Some(s),
            Found::Attr(Attr::Str(s)) => Some(s),
            Found::Attr(Attr::Json(Value::String(s))) => Some(s),
            _ => None,
        }
    }

    /// A number value.
    pub(crate) fn as_number(self) -> Option<&'a Number> {
        match self {
            Found::Json(Value::Number(n)) => Some(n),
            Found::Attr(Attr::Number(n)) => Some(n),
            Found::Attr(Attr::Json(Value::Number(n))) => Some(n),
            _ => None,
        }
    }

    /// Whether it is `null`.
    pub(crate) fn is_null(self) -> bool {
        matches!(
            self,
            Found::Json(Value::Null) | Found::Attr(Attr::Null | Attr::Json(Value::Null))
        )
    }

    /// Its JSON type, for messages ("a string", "an object", ...).
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Found::Json(v) | Found::Attr(&Attr::Json(v)) => json_type(v),
            Found::Attr(Attr::Null) => "null",
            Found::Attr(Attr::Bool(_)) => "a boolean",
            Found::Attr(Attr::Number(_)) => "a number",
            Found::Attr(Attr::Str(_)) => "a string",
            Found::Object => "an object",
        }
    }
}

/// The JSON type of `v`, for messages.
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_equal_is_equality() {
        let text = b"targetingKey-department.version@bunting.dev-0123456789abcdefghij";
        for n in 0..=40 {
            for i in 0..=text.len() - n {
                for j in 0..=text.len() - n {
                    let (a, b) = (&text[i..i + n], &text[j..j + n]);
                    assert_eq!(words_equal(a, b), a == b, "{a:?} {b:?}");
                    assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
                }
            }
            assert!(!words_equal(&text[..n], &text[..n + 1]));
        }
    }

    proptest::proptest! {
        #[test]
        fn words_equal_is_equality_on_any_bytes(
            a in proptest::collection::vec(0u8..4, 0..40),
            flip in proptest::collection::vec(proptest::bool::weighted(0.03), 40),
        ) {
            let b: Vec<u8> = a.iter().zip(&flip).map(|(x, f)| if *f { x ^ 1 } else { *x }).collect();
            proptest::prop_assert_eq!(words_equal(&a, &b), a == b);
            proptest::prop_assert!(words_equal(&a, &a.clone()));
        }
    }

    #[test]
    fn setting_a_name_again_replaces_its_value() {
        let ctx = Context::new().with("plan", "free").with("plan", "pro");
        assert_eq!(ctx.to_json(), json!({"plan": "pro"}));
    }

    #[test]
    fn numbers_keep_their_json_spelling_and_nan_is_null() {
        let ctx = Context::new()
            .with("i", 7)
            .with("f", 2.5)
            .with("nan", f64::NAN)
            .with("none", None::<&str>);
        assert_eq!(
            ctx.to_json(),
            json!({"i": 7, "f": 2.5, "nan": null, "none": null})
        );
    }

    #[test]
    fn replacing_an_object_drops_its_members() {
        let ctx = Context::new()
            .with_object("app", |app| {
                app.set("version", "1.0").set("name", "web");
            })
            .with_object("app", |app| {
                app.set("version", "2.0");
            });
        assert_eq!(ctx.to_json(), json!({"app": {"version": "2.0"}}));
        let mut ctx = ctx.with("app", "flat");
        assert_eq!(ctx.to_json(), json!({"app": "flat"}));
        assert!(ctx.remove("app") && !ctx.remove("app"));
        assert!(ctx.is_empty());
        assert_eq!(ctx.to_json(), json!({}));
        assert!(ctx.context_ref().lookup(&["app", "version"]).is_none());
    }

    #[test]
    fn serializes_as_its_json_form() {
        let list = json!(["a", 1]);
        let ctx = Context::new()
            .with_targeting_key("u1")
            .with("n", 2.5)
            .with("none", None::<bool>)
            .with("list", &list)
            .with_object("a", |a| {
                a.set("x", "old").set_object("b", |b| {
                    b.set("c", true);
                });
                a.set("x", "y");
            });
        let text = serde_json::to_string(&ctx).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ctx.to_json());
        assert_eq!(
            back,
            json!({"targetingKey": "u1", "n": 2.5, "none": null, "list": ["a", 1],
                   "a": {"x": "y", "b": {"c": true}}})
        );
    }

    #[test]
    fn objects_nest() {
        let ctx = Context::new().with_object("a", |a| {
            a.set_object("b", |b| {
                b.set("c", true);
            });
        });
        assert_eq!(ctx.to_json(), json!({"a": {"b": {"c": true}}}));
        let r = ctx.context_ref();
        assert!(matches!(r.lookup(&["a", "b"]), Some(Found::Object)));
        assert!(matches!(
            r.lookup(&["a", "b", "c"]),
            Some(Found::Attr(Attr::Bool(true)))
        ));
    }

    #[test]
    fn paths_reach_into_objects_and_json() {
        let tags = json!({"list": ["a", "b"]});
        let ctx = Context::new()
            .with_object("app", |app| {
                app.set("version", "2.1");
            })
            .with("tags", &tags)
            .with("plan", "pro");
        let r = ctx.context_ref();
        assert_eq!(r.lookup(&["app", "version"]).unwrap().as_str(), Some("2.1"));
        assert_eq!(
            r.lookup(&["tags", "list", "1"]).unwrap().as_str(),
            Some("b")
        );
        assert!(r.lookup(&["plan", "x"]).is_none());
        assert!(r.lookup(&["app", "name"]).is_none());
        assert!(r.lookup::<&str>(&[]).is_none());
    }
}
