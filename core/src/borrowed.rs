//! A borrowed mirror of the flag model ([`crate::model`]), the form a
//! snapshot document is loaded through.
//!
//! Every type has the name, the fields, the field order and the serde
//! attributes of its counterpart in `model`, so a document deserializes
//! into it with the same errors, word for word; [`Snapshot::canonical`]
//! writes the same canonical JSON as serializing the model, byte for byte
//! (the checksum). The difference is
//! that strings borrow from the document when they hold no escape, so
//! loading copies and frees far less. [`Snapshot::of`] views an owned
//! [`model::Snapshot`] the same way, so validation and compilation have
//! one input type. Hosts reach it through [`crate::ParsedSnapshot`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::model::{self, FlagType};

/// A string borrowed from the document where it has no escape, owned
/// otherwise. Deserializes with `String`'s error messages ("a string") and
/// formats as a `str` (`{:?}` too: messages quote keys with it).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Str<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'a> Str<'a> {
    fn of(s: &'a str) -> Str<'a> {
        Str(Cow::Borrowed(s))
    }

    fn of_all(v: &'a [String]) -> Vec<Str<'a>> {
        v.iter().map(|s| Str::of(s)).collect()
    }

    fn of_opt(s: &'a Option<String>) -> Option<Str<'a>> {
        s.as_deref().map(Str::of)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `String`'s visitor says the same.
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Str<'de>, E> {
                match std::str::from_utf8(v) {
                    Ok(s) => Ok(Str(Cow::Owned(s.to_owned()))),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
                }
            }
        }
        d.deserialize_string(Visitor)
    }
}

/// A list whose first two items are held in place, the rest of a longer
/// one in a `Vec`: a rollout's arms and a flag's tags, nearly always one or
/// two, cost no allocation. Deserializes as a `Vec` does, with its
/// messages ("a sequence").
#[derive(Debug, Clone)]
pub(crate) enum Small<T> {
    One([T; 1]),
    Two([T; 2]),
    /// None, or more than two.
    Many(Vec<T>),
}

impl<T> Default for Small<T> {
    fn default() -> Small<T> {
        Small::Many(Vec::new())
    }
}

impl<T> Deref for Small<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Small::One(items) => items,
            Small::Two(items) => items,
            Small::Many(items) => items,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Small<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Small<T>, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Small<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `Vec`'s visitor says the same.
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Small<T>, A::Error> {
                let Some(a) = seq.next_element()? else {
                    return Ok(Small::default());
                };
                let Some(b) = seq.next_element()? else {
                    return Ok(Small::One([a]));
                };
                let Some(c) = seq.next_element()? else {
                    return Ok(Small::Two([a, b]));
                };
                let mut items = vec![a, b, c];
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Small::Many(items))
            }
        }
        d.deserialize_seq(Visitor(std::marker::PhantomData))
    }
}

/// A flag's variants: read from a document (names borrowed where they can
/// be), or the model's own map when an owned snapshot is viewed, so that
/// viewing copies no map. Either way iterated sorted by name.
#[derive(Debug)]
pub(crate) enum Variants<'a> {
    /// From a document: sorted by name, each name once (the last value
    /// written for it, as in a `BTreeMap`). A list of a few entries costs
    /// less to build than a tree node.
    Parsed(Vec<(Str<'a>, Value)>),
    /// From a document, written as the flag's before it were (names and
    /// values alike, see [`same_value`]): one list for all such flags, in
    /// the compiled form, which compilation shares as it is.
    Shared(crate::compile::Variants),
    /// From an owned [`model::Flag`].
    Model(&'a BTreeMap<String, Value>),
}

impl Variants<'_> {
    /// `(name, value)` pairs sorted by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let (parsed, shared, model) = match self {
            Variants::Parsed(m) => (Some(m.iter().map(|(k, v)| (&**k, v))), None, None),
            Variants::Shared(m) => (None, Some(m.iter().map(|(k, v)| (&**k, v))), None),
            Variants::Model(m) => (None, None, Some(m.iter().map(|(k, v)| (k.as_str(), v)))),
        };
        parsed
            .into_iter()
            .flatten()
            .chain(shared.into_iter().flatten())
            .chain(model.into_iter().flatten())
    }

    /// Whether there is a variant `name`.
    pub(crate) fn contains_key(&self, name: &str) -> bool {
        match self {
            Variants::Parsed(m) => m.binary_search_by(|(n, _)| (**n).cmp(name)).is_ok(),
            Variants::Shared(m) => m.binary_search_by(|(n, _)| (**n).cmp(name)).is_ok(),
            Variants::Model(m) => m.contains_key(name),
        }
    }
}

/// A variant's value as read: a string borrowed from the document where it
/// has no escape, anything else as `serde_json` reads it. Deserializes as a
/// [`Value`] does, with its messages.
enum Scalar<'a> {
    Str(Str<'a>),
    Value(Value),
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar<'a>, D::Error> {
        // What `Value`'s visitor builds, call for call.
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Value(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Value(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Value(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Value(Value::from(v)))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Str(Cow::Owned(v))))
            }
            fn visit_none<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Value(Value::Null))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Value(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
                Value::deserialize(d).map(Scalar::Value)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Scalar<'de>, A::Error> {
                Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Scalar::Value)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Scalar<'de>, A::Error> {
                Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Scalar::Value)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Scalar<'_> {
    /// Whether `value` is this, written alike (see [`same_value`]).
    fn is(&self, value: &Value) -> bool {
        match (self, value) {
            (Scalar::Str(s), Value::String(t)) => **s == **t,
            (Scalar::Str(_), _) => false,
            (Scalar::Value(v), w) => same_value(v, w),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Scalar::Str(s) => Value::String(s.0.into_owned()),
            Scalar::Value(v) => v,
        }
    }
}

/// The variants read last, so the next flag's can share them: the state
/// of one [`Snapshot::parse`], reset by it.
#[derive(Default)]
struct Sharing {
    /// Whether a [`Snapshot::parse`] is under way (sharing is on).
    on: bool,
    /// The variants the last flags shared.
    shared: Option<crate::compile::Variants>,
    /// A hash of the last flag's variants when they were not shared: the
    /// next flag with the same hash shares its own with the flags after it.
    last: Option<u64>,
}

thread_local! {
    static SHARING: std::cell::RefCell<Sharing> = std::cell::RefCell::default();
}

/// A hash of names and values; `None` when a value is an array or an
/// object (never shared).
fn scalars_hash(entries: &[(Str<'_>, Scalar<'_>)]) -> Option<u64> {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    for (name, value) in entries {
        name.hash(&mut h);
        match value {
            Scalar::Str(s) => (0u8, &**s).hash(&mut h),
            Scalar::Value(Value::Number(n)) => (1u8, n.as_f64().map(f64::to_bits)).hash(&mut h),
            Scalar::Value(Value::Bool(b)) => (2u8, *b).hash(&mut h),
            Scalar::Value(Value::Null) => 3u8.hash(&mut h),
            Scalar::Value(_) => return None,
        }
    }
    Some(h.finish())
}

/// The variants of a flag just read, sorted by name.
fn variants<'a>(entries: smallvec::SmallVec<[(Str<'a>, Scalar<'a>); 4]>) -> Variants<'a> {
    let owned = |entries: smallvec::SmallVec<[(Str<'a>, Scalar<'a>); 4]>| {
        entries
            .into_iter()
            .map(|(name, value)| (name, value.into_value()))
            .collect()
    };
    SHARING.with(|sharing| {
        let mut sharing = sharing.borrow_mut();
        if !sharing.on {
            return Variants::Parsed(owned(entries));
        }
        if let Some(shared) = &sharing.shared
            && shared.len() == entries.len()
            && shared
                .iter()
                .zip(&entries)
                .all(|((n, v), (name, value))| **n == **name && value.is(v))
        {
            return Variants::Shared(std::sync::Arc::clone(shared));
        }
        let hash = scalars_hash(&entries);
        if hash.is_some() && hash == sharing.last {
            let shared: crate::compile::Variants = entries
                .into_iter()
                .map(|(name, value)| (Box::from(&*name), value.into_value()))
                .collect();
            sharing.shared = Some(std::sync::Arc::clone(&shared));
            sharing.last = None;
            return Variants::Shared(shared);
        }
        sharing.last = hash;
        Variants::Parsed(owned(entries))
    })
}

impl<'de: 'a, 'a> Deserialize<'de> for Variants<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Variants<'a>, D::Error> {
        // As the model's `BTreeMap<String, Value>`, with its messages.
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Variants<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `BTreeMap`'s visitor says the same.
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries: smallvec::SmallVec<[(Str<'de>, Scalar<'de>); 4]> =
                    smallvec::SmallVec::new();
                while let Some((name, value)) = map.next_entry::<Str<'de>, Scalar<'de>>()? {
                    match entries.binary_search_by(|(n, _)| (**n).cmp(&*name)) {
                        // `BTreeMap::insert` keeps the key, replaces the value.
                        Ok(i) => entries[i].1 = value,
                        Err(i) => entries.insert(i, (name, value)),
                    }
                }
                Ok(variants(entries))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// [`model::Snapshot`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Snapshot<'a> {
    pub schema_version: u32,
    #[serde(borrow)]
    pub environment: Str<'a>,
    pub version: u64,
    #[serde(borrow)]
    pub generated_at: Str<'a>,
    #[serde(default, borrow, deserialize_with = "flags")]
    pub flags: Vec<Flag<'a>>,
    #[serde(default, borrow)]
    pub segments: Vec<Segment<'a>>,
    #[serde(default, borrow)]
    pub layers: Vec<Layer<'a>>,
    #[serde(default, borrow)]
    pub checksum: Option<Str<'a>>,
}

thread_local! {
    /// The capacity [`flags`] reserves: set by [`Snapshot::parse`] for its
    /// document.
    static FLAGS_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The fewest bytes of JSON a valid flag takes; a guess, as a hint.
const MIN_FLAG: usize = 256;

/// `Vec<Flag>`'s deserializer, with the capacity of [`FLAGS_HINT`].
fn flags<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Vec<Flag<'a>>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<Flag<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<Flag<'de>>, A::Error> {
            let mut flags = Vec::with_capacity(FLAGS_HINT.with(|hint| hint.get()));
            while let Some(flag) = seq.next_element()? {
                flags.push(flag);
            }
            Ok(flags)
        }
    }
    d.deserialize_seq(Visitor)
}

/// [`model::Flag`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Flag<'a> {
    #[serde(borrow)]
    pub key: Str<'a>,
    #[serde(rename = "type")]
    pub flag_type: FlagType,
    #[serde(borrow)]
    pub variants: Variants<'a>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(borrow)]
    pub off_variant: Str<'a>,
    #[serde(default, borrow)]
    pub rules: Rules<'a>,
    #[serde(borrow)]
    pub fallthrough: Serve<'a>,
    /// The fallthrough's position among a packed snapshot's serves: flags
    /// with the same one and the same variants compile it alike (see
    /// [`crate::compile`]). `None` for a flag read from a document.
    #[serde(skip)]
    pub fallthrough_at: Option<usize>,
    #[serde(default, borrow)]
    pub prerequisites: Vec<Prerequisite<'a>>,
    #[serde(default, borrow)]
    pub salt: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub bucket_by: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub layer: Option<LayerSlot<'a>>,
    #[serde(default)]
    pub client_side: bool,
    #[serde(default, borrow)]
    pub metadata: FlagMetadata<'a>,
}

fn yes() -> bool {
    true
}

/// [`model::FlagMetadata`], borrowed.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FlagMetadata<'a> {
    #[serde(default, borrow)]
    pub description: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub owner: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub tags: Small<Str<'a>>,
}

impl FlagMetadata<'_> {
    /// The owned metadata.
    pub(crate) fn to_model(&self) -> model::FlagMetadata {
        model::FlagMetadata {
            description: self.description.as_deref().map(str::to_string),
            owner: self.owner.as_deref().map(str::to_string),
            tags: self.tags.iter().map(|t| String::from(&**t)).collect(),
        }
    }
}

/// A flag's rules: its own (read from a document), or a list the packed
/// reader shares among the flags whose rules are the same packed rules in
/// the same order. Compiling shares the compiled rules of such flags when
/// their variants are shared too (see [`crate::compile`]). Deserializes
/// as a `Vec` does, with its messages.
#[derive(Debug, Clone)]
pub(crate) enum Rules<'a> {
    /// Read from a document or viewed from a model.
    Own(Vec<Rule<'a>>),
    /// From a packed snapshot, one list for every flag that has it, and
    /// its position among the snapshot's distinct rule lists.
    Shared(std::sync::Arc<[Rule<'a>]>, usize),
}

impl Default for Rules<'_> {
    fn default() -> Self {
        Rules::Own(Vec::new())
    }
}

impl<'a> Deref for Rules<'a> {
    type Target = [Rule<'a>];
    fn deref(&self) -> &[Rule<'a>] {
        match self {
            Rules::Own(rules) => rules,
            Rules::Shared(rules, _) => rules,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Rules<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rules<'a>, D::Error> {
        Vec::deserialize(d).map(Rules::Own)
    }
}

/// [`model::Rule`], borrowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Rule<'a> {
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub description: Option<Str<'a>>,
    #[serde(borrow)]
    pub condition: Str<'a>,
    #[serde(borrow)]
    pub serve: Serve<'a>,
    /// The condition as the packer compiled it (a packed snapshot of
    /// format version 2): compiling the engine then parses nothing.
    #[serde(skip)]
    pub compiled: Option<crate::compile::Precompiled>,
}

/// [`model::Serve`], borrowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) enum Serve<'a> {
    Variant(#[serde(borrow)] Str<'a>),
    Rollout(#[serde(borrow)] Small<WeightedVariant<'a>>),
    Schedule(#[serde(borrow)] Schedule<'a>),
}

/// [`model::WeightedVariant`], borrowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WeightedVariant<'a> {
    #[serde(borrow)]
    pub variant: Str<'a>,
    pub weight: f64,
}

/// [`model::Schedule`], borrowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Schedule<'a> {
    #[serde(borrow)]
    pub variant: Str<'a>,
    #[serde(borrow)]
    pub otherwise: Str<'a>,
    #[serde(borrow)]
    pub steps: Vec<ScheduleStep<'a>>,
}

/// [`model::ScheduleStep`], borrowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ScheduleStep<'a> {
    #[serde(borrow)]
    pub at: Str<'a>,
    pub percentage: f64,
}

/// [`model::Prerequisite`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Prerequisite<'a> {
    #[serde(borrow)]
    pub flag: Str<'a>,
    #[serde(borrow)]
    pub variant: Str<'a>,
}

/// [`model::Segment`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Segment<'a> {
    #[serde(borrow)]
    pub key: Str<'a>,
    #[serde(default, borrow)]
    pub included: Vec<Str<'a>>,
    #[serde(default, borrow)]
    pub excluded: Vec<Str<'a>>,
    #[serde(default, borrow)]
    pub condition: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub description: Option<Str<'a>>,
    /// The condition as the packer compiled it, as for [`Rule::compiled`].
    #[serde(skip)]
    pub compiled: Option<crate::compile::Precompiled>,
}

/// [`model::Layer`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Layer<'a> {
    #[serde(borrow)]
    pub key: Str<'a>,
    #[serde(default, borrow)]
    pub salt: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub bucket_by: Option<Str<'a>>,
}

/// [`model::LayerSlot`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LayerSlot<'a> {
    #[serde(borrow)]
    pub key: Str<'a>,
    pub start: f64,
    pub end: f64,
}

impl<'a> Snapshot<'a> {
    /// Parses a document, borrowing its strings where it can.
    pub(crate) fn parse(json: &'a str) -> Result<Snapshot<'a>, serde_json::Error> {
        // The flags' list is sized for the longest one the document could
        // hold, so it never grows (a flag takes more than `MIN_FLAG` bytes).
        FLAGS_HINT.with(|hint| hint.set(json.len() / MIN_FLAG));
        SHARING.with(|sharing| sharing.borrow_mut().on = true);
        let parsed = serde_json::from_str(json);
        FLAGS_HINT.with(|hint| hint.set(0));
        SHARING.with(|sharing| *sharing.borrow_mut() = Sharing::default());
        parsed
    }

    /// Views an owned snapshot (its variant maps are borrowed as they are).
    pub(crate) fn of(s: &'a model::Snapshot) -> Snapshot<'a> {
        Snapshot {
            schema_version: s.schema_version,
            environment: Str::of(&s.environment),
            version: s.version,
            generated_at: Str::of(&s.generated_at),
            flags: s.flags.iter().map(Flag::of).collect(),
            segments: s.segments.iter().map(Segment::of).collect(),
            layers: s.layers.iter().map(Layer::of).collect(),
            checksum: Str::of_opt(&s.checksum),
        }
    }
}

impl<'a> Flag<'a> {
    fn of(f: &'a model::Flag) -> Flag<'a> {
        Flag {
            key: Str::of(&f.key),
            flag_type: f.flag_type,
            variants: Variants::Model(&f.variants),
            enabled: f.enabled,
            off_variant: Str::of(&f.off_variant),
            rules: Rules::Own(f.rules.iter().map(Rule::of).collect()),
            fallthrough: Serve::of(&f.fallthrough),
            fallthrough_at: None,
            prerequisites: f
                .prerequisites
                .iter()
                .map(|p| Prerequisite {
                    flag: Str::of(&p.flag),
                    variant: Str::of(&p.variant),
                })
                .collect(),
            salt: Str::of_opt(&f.salt),
            bucket_by: Str::of_opt(&f.bucket_by),
            layer: f.layer.as_ref().map(|l| LayerSlot {
                key: Str::of(&l.key),
                start: l.start,
                end: l.end,
            }),
            client_side: f.client_side,
            metadata: FlagMetadata {
                description: Str::of_opt(&f.metadata.description),
                owner: Str::of_opt(&f.metadata.owner),
                tags: Small::Many(Str::of_all(&f.metadata.tags)),
            },
        }
    }
}

impl<'a> Rule<'a> {
    fn of(r: &'a model::Rule) -> Rule<'a> {
        Rule {
            id: Str::of_opt(&r.id),
            description: Str::of_opt(&r.description),
            condition: Str::of(&r.condition),
            serve: Serve::of(&r.serve),
            compiled: None,
        }
    }
}

impl<'a> Serve<'a> {
    fn of(s: &'a model::Serve) -> Serve<'a> {
        match s {
            model::Serve::Variant(v) => Serve::Variant(Str::of(v)),
            model::Serve::Rollout(arms) => Serve::Rollout(Small::Many(
                arms.iter()
                    .map(|a| WeightedVariant {
                        variant: Str::of(&a.variant),
                        weight: a.weight,
                    })
                    .collect(),
            )),
            model::Serve::Schedule(s) => Serve::Schedule(Schedule {
                variant: Str::of(&s.variant),
                otherwise: Str::of(&s.otherwise),
                steps: s
                    .steps
                    .iter()
                    .map(|st| ScheduleStep {
                        at: Str::of(&st.at),
                        percentage: st.percentage,
                    })
                    .collect(),
            }),
        }
    }
}

impl<'a> Segment<'a> {
    fn of(s: &'a model::Segment) -> Segment<'a> {
        Segment {
            key: Str::of(&s.key),
            included: Str::of_all(&s.included),
            excluded: Str::of_all(&s.excluded),
            condition: Str::of_opt(&s.condition),
            description: Str::of_opt(&s.description),
            compiled: None,
        }
    }
}

impl<'a> Layer<'a> {
    fn of(l: &'a model::Layer) -> Layer<'a> {
        Layer {
            key: Str::of(&l.key),
            salt: Str::of_opt(&l.salt),
            bucket_by: Str::of_opt(&l.bucket_by),
        }
    }
}

/// The canonical JSON of the model's serialization, written by hand: what
/// `serde_json::to_writer` writes for the [`model`] type of the same name
/// (compact, fields in declaration order, the model's `skip_serializing_if`
/// rules), so the checksum is the same. Strings without a character to
/// escape, nearly all of them, are written as they are; the others, values
/// and numbers go through `serde_json`.
///
/// The bytes go to a [`Sink`], which hashes them without keeping them all.
struct Canonical<'s> {
    out: &'s mut Sink,
    escaped: Escaped,
    memo: Memo,
}

/// The canonical bytes of the parts of the flag written last: the flags of
/// a snapshot are mostly written alike but for their key and metadata (the
/// same variants, rules and fallthrough), and comparing a part with the
/// previous flag's costs less than writing it again.
#[derive(Default)]
struct Memo {
    /// By part ([`HEAD`], [`FALLTHROUGH`], then the rules): its bytes as
    /// the last flag that has it wrote them.
    parts: Vec<Vec<u8>>,
}

/// The part from `,"type":` to the `offVariant`.
const HEAD: usize = 0;
/// The part `,"fallthrough":…`.
const FALLTHROUGH: usize = 1;
/// The first rule's part; the rules after [`MEMO_RULES`] are always written.
const RULES: usize = 2;
/// Rules remembered per flag.
const MEMO_RULES: usize = 8;

/// The strings with escapes written so far and their escaped forms: the
/// same condition text (quotes in it are escaped) recurs across flags,
/// and copying it is cheaper than escaping it byte by byte again.
#[derive(Default)]
struct Escaped {
    /// Hash of a string to `(its range, its escaped form's range)` in
    /// `store`; a hash seen for another string is not cached again.
    index: foldhash::HashMap<u64, (std::ops::Range<usize>, std::ops::Range<usize>)>,
    store: Vec<u8>,
    hasher: foldhash::fast::FixedState,
}

/// Where the canonical JSON goes: SHA-256, a chunk at a time. The chunk
/// stays in the cache, where a buffer the size of the document did not
/// (nor its allocation, page faults and freeing).
pub(crate) struct Sink {
    /// Output not yet hashed: about a [`CHUNK`] at most.
    buf: Vec<u8>,
    hasher: Sha256,
}

/// Bytes buffered before they are hashed.
const CHUNK: usize = 16 * 1024;

impl Sink {
    /// An empty sink.
    pub(crate) fn new() -> Sink {
        Sink {
            buf: Vec::with_capacity(CHUNK + 64),
            hasher: Sha256::new(),
        }
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Hashes what is buffered once it is a chunk: called between flags
    /// and segments rather than on every write.
    fn settle(&mut self) {
        if self.buf.len() >= CHUNK {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    /// The SHA-256 of everything written.
    pub(crate) fn finish(mut self) -> [u8; 32] {
        self.hasher.update(&self.buf);
        self.hasher.finalize().into()
    }
}

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        Sink::write(self, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Canonical<'_> {
    fn new(out: &mut Sink) -> Canonical<'_> {
        Canonical {
            out,
            escaped: Escaped::default(),
            memo: Memo::default(),
        }
    }

    fn raw(&mut self, s: &str) {
        self.out.write(s.as_bytes());
    }

    /// Part `slot` of a flag: the previous flag's bytes for it when it
    /// wrote the part alike (`same`), else written by `write` and kept.
    fn part(&mut self, slot: usize, same: bool, write: impl FnOnce(&mut Self)) {
        if same && let Some(bytes) = self.memo.parts.get(slot) {
            self.out.write(bytes);
            return;
        }
        let start = self.out.buf.len();
        write(self);
        if self.memo.parts.len() <= slot {
            self.memo.parts.resize_with(slot + 1, Vec::new);
        }
        let kept = &mut self.memo.parts[slot];
        kept.clear();
        kept.extend_from_slice(&self.out.buf[start..]);
    }

    fn byte(&mut self, b: u8) {
        self.out.write(&[b]);
    }

    fn str(&mut self, s: &str) {
        // No early exit, so the scan vectorizes: one pass over short strings.
        let escape = s.bytes().fold(false, |acc, b| {
            acc | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if escape {
            self.escaped(s);
        } else {
            let buf = &mut self.out.buf;
            buf.reserve(s.len() + 2);
            buf.push(b'"');
            buf.extend_from_slice(s.as_bytes());
            buf.push(b'"');
        }
    }

    /// `s`, which needs escaping, as `serde_json` writes it.
    fn escaped(&mut self, s: &str) {
        use std::hash::BuildHasher;
        let cache = &mut self.escaped;
        let hash = cache.hasher.hash_one(s);
        if let Some((text, escaped)) = cache.index.get(&hash) {
            if cache.store[text.clone()] == *s.as_bytes() {
                self.out.write(&cache.store[escaped.clone()]);
            } else {
                self.json(s);
            }
            return;
        }
        let start = cache.store.len();
        cache.store.extend_from_slice(s.as_bytes());
        let middle = cache.store.len();
        serde_json::to_writer(&mut cache.store, s).expect("writing to a Vec cannot fail");
        let end = cache.store.len();
        cache.index.insert(hash, (start..middle, middle..end));
        self.out.write(&cache.store[middle..end]);
    }

    fn json<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        serde_json::to_writer(&mut *self.out, v).expect("a sink cannot fail");
    }

    /// A variant's value: strings and booleans directly, the rest through
    /// `serde_json`.
    fn value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.str(s),
            Value::Bool(b) => self.bool(*b),
            _ => self.json(v),
        }
    }

    /// A float as `serde_json` writes it: a whole number of small
    /// magnitude as `<integer>.0` (`-0.0` and the rest through
    /// `serde_json`).
    fn float(&mut self, x: f64) {
        if x.fract() == 0.0 && x.abs() < 1e9 && !(x == 0.0 && x.is_sign_negative()) {
            self.num_signed(x as i64);
            self.raw(".0");
        } else {
            self.json(&x);
        }
    }

    fn num(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.out.write(&digits[i..]);
    }

    fn num_signed(&mut self, n: i64) {
        if n < 0 {
            self.byte(b'-');
        }
        self.num(n.unsigned_abs());
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    /// `field`, which is `,"name":`, without its comma after a `{`
    /// (`first`). The other fields are written whole, with `raw`.
    fn field(&mut self, first: bool, field: &str) {
        self.raw(if first { &field[1..] } else { field });
    }

    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.byte(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.byte(b',');
            }
            each(self, item);
        }
        self.byte(b']');
    }

    fn strs(&mut self, items: &[Str<'_>]) {
        self.list(items, |w, s| w.str(s));
    }

    fn snapshot(&mut self, s: &Snapshot<'_>) {
        self.raw("{\"schemaVersion\":");
        self.num(u64::from(s.schema_version));
        self.raw(",\"environment\":");
        self.str(&s.environment);
        self.raw(",\"version\":");
        self.num(s.version);
        self.raw(",\"generatedAt\":");
        self.str(&s.generated_at);
        self.raw(",\"flags\":[");
        let mut prev = None;
        for (i, f) in s.flags.iter().enumerate() {
            if i > 0 {
                self.byte(b',');
            }
            self.flag(f, prev);
            self.out.settle();
            prev = Some(f);
        }
        self.byte(b']');
        // The checksum's own serializer writes these two even when empty.
        self.raw(",\"segments\":");
        self.list(&s.segments, |w, seg| {
            w.segment(seg);
            w.out.settle();
        });
        self.raw(",\"layers\":");
        self.list(&s.layers, Self::layer);
        self.byte(b'}');
    }

    /// A flag; `prev` is the flag written before it, whose parts it
    /// reuses where it is written alike.
    fn flag(&mut self, f: &Flag<'_>, prev: Option<&Flag<'_>>) {
        self.raw("{\"key\":");
        self.str(&f.key);
        let same = prev.is_some_and(|p| {
            p.flag_type == f.flag_type
                && p.enabled == f.enabled
                && p.off_variant == f.off_variant
                && f.variants.same(&p.variants)
        });
        self.part(HEAD, same, |w| {
            w.raw(",\"type\":");
            w.str(f.flag_type.as_str());
            w.raw(",\"variants\":");
            w.byte(b'{');
            for (i, (name, value)) in f.variants.iter().enumerate() {
                if i > 0 {
                    w.byte(b',');
                }
                w.str(name);
                w.byte(b':');
                w.value(value);
            }
            w.byte(b'}');
            w.raw(",\"enabled\":");
            w.bool(f.enabled);
            w.raw(",\"offVariant\":");
            w.str(&f.off_variant);
        });
        if !f.rules.is_empty() {
            self.raw(",\"rules\":[");
            for (j, rule) in f.rules.iter().enumerate() {
                if j > 0 {
                    self.byte(b',');
                }
                if j < MEMO_RULES {
                    let same = prev
                        .and_then(|p| p.rules.get(j))
                        .is_some_and(|p| p.same(rule));
                    self.part(RULES + j, same, |w| w.rule(rule));
                } else {
                    self.rule(rule);
                }
            }
            self.byte(b']');
        }
        let same = prev.is_some_and(|p| p.fallthrough.same(&f.fallthrough));
        self.part(FALLTHROUGH, same, |w| {
            w.raw(",\"fallthrough\":");
            w.serve(&f.fallthrough);
        });
        if !f.prerequisites.is_empty() {
            self.raw(",\"prerequisites\":");
            self.list(&f.prerequisites, |w, p| {
                w.raw("{\"flag\":");
                w.str(&p.flag);
                w.raw(",\"variant\":");
                w.str(&p.variant);
                w.byte(b'}');
            });
        }
        if let Some(salt) = &f.salt {
            self.raw(",\"salt\":");
            self.str(salt);
        }
        if let Some(by) = &f.bucket_by {
            self.raw(",\"bucketBy\":");
            self.str(by);
        }
        if let Some(slot) = &f.layer {
            self.raw(",\"layer\":");
            self.raw("{\"key\":");
            self.str(&slot.key);
            self.raw(",\"start\":");
            self.float(slot.start);
            self.raw(",\"end\":");
            self.float(slot.end);
            self.byte(b'}');
        }
        if f.client_side {
            self.raw(",\"clientSide\":");
            self.bool(true);
        }
        self.raw(",\"metadata\":");
        let m = &f.metadata;
        self.byte(b'{');
        let mut first = true;
        if let Some(d) = &m.description {
            self.field(first, ",\"description\":");
            self.str(d);
            first = false;
        }
        if let Some(o) = &m.owner {
            self.field(first, ",\"owner\":");
            self.str(o);
            first = false;
        }
        if !m.tags.is_empty() {
            self.field(first, ",\"tags\":");
            self.strs(&m.tags);
        }
        self.raw("}}");
    }

    fn rule(&mut self, r: &Rule<'_>) {
        self.byte(b'{');
        let mut first = true;
        if let Some(id) = &r.id {
            self.field(first, ",\"id\":");
            self.str(id);
            first = false;
        }
        if let Some(d) = &r.description {
            self.field(first, ",\"description\":");
            self.str(d);
            first = false;
        }
        self.field(first, ",\"condition\":");
        self.str(&r.condition);
        self.raw(",\"serve\":");
        self.serve(&r.serve);
        self.byte(b'}');
    }

    fn serve(&mut self, s: &Serve<'_>) {
        match s {
            Serve::Variant(v) => {
                self.raw("{\"variant\":");
                self.str(v);
            }
            Serve::Rollout(arms) => {
                self.raw("{\"rollout\":");
                self.list(arms, |w, a| {
                    w.raw("{\"variant\":");
                    w.str(&a.variant);
                    w.raw(",\"weight\":");
                    w.float(a.weight);
                    w.byte(b'}');
                });
            }
            Serve::Schedule(s) => {
                self.raw("{\"schedule\":{\"variant\":");
                self.str(&s.variant);
                self.raw(",\"otherwise\":");
                self.str(&s.otherwise);
                self.raw(",\"steps\":");
                self.list(&s.steps, |w, st| {
                    w.raw("{\"at\":");
                    w.str(&st.at);
                    w.raw(",\"percentage\":");
                    w.float(st.percentage);
                    w.byte(b'}');
                });
                self.byte(b'}');
            }
        }
        self.byte(b'}');
    }

    fn segment(&mut self, s: &Segment<'_>) {
        self.raw("{\"key\":");
        self.str(&s.key);
        if !s.included.is_empty() {
            self.raw(",\"included\":");
            self.strs(&s.included);
        }
        if !s.excluded.is_empty() {
            self.raw(",\"excluded\":");
            self.strs(&s.excluded);
        }
        if let Some(c) = &s.condition {
            self.raw(",\"condition\":");
            self.str(c);
        }
        if let Some(d) = &s.description {
            self.raw(",\"description\":");
            self.str(d);
        }
        self.byte(b'}');
    }

    fn layer(&mut self, l: &Layer<'_>) {
        self.raw("{\"key\":");
        self.str(&l.key);
        if let Some(salt) = &l.salt {
            self.raw(",\"salt\":");
            self.str(salt);
        }
        if let Some(by) = &l.bucket_by {
            self.raw(",\"bucketBy\":");
            self.str(by);
        }
        self.byte(b'}');
    }
}

impl Snapshot<'_> {
    /// Writes the canonical JSON of the snapshot without its checksum
    /// (see [`crate::snapshot::checksum`]) to `out`.
    pub(crate) fn canonical(&self, out: &mut Sink) {
        Canonical::new(out).snapshot(self);
    }
}

/// Whether two values are written the same: unlike `==`, a float `0.0` is
/// not `-0.0`, nor `1.0` the integer `1`. Arrays and objects are never
/// compared (and so never the same): they are rare as variants, and their
/// numbers would need the same care.
pub(crate) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => {
            (a.as_u64(), a.as_i64(), a.as_f64().map(f64::to_bits))
                == (b.as_u64(), b.as_i64(), b.as_f64().map(f64::to_bits))
                && a.is_f64() == b.is_f64()
        }
        (Value::Array(_) | Value::Object(_), _) => false,
        _ => a == b,
    }
}

impl Variants<'_> {
    /// Whether `self` and `other` have the same names and values, written
    /// alike (see [`same_value`]).
    fn same(&self, other: &Variants<'_>) -> bool {
        if let (Variants::Shared(a), Variants::Shared(b)) = (self, other)
            && std::sync::Arc::ptr_eq(a, b)
        {
            return true;
        }
        let (mut a, mut b) = (self.iter(), other.iter());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some((n, v)), Some((m, w))) if n == m && same_value(v, w) => {}
                _ => return false,
            }
        }
    }
}

impl Rule<'_> {
    /// Whether `self` and `other` are written alike.
    fn same(&self, other: &Rule<'_>) -> bool {
        self.condition == other.condition
            && self.id == other.id
            && self.description == other.description
            && self.serve.same(&other.serve)
    }
}

impl Serve<'_> {
    /// Whether `self` and `other` are written alike (weights and
    /// percentages bit for bit).
    fn same(&self, other: &Serve<'_>) -> bool {
        match (self, other) {
            (Serve::Variant(a), Serve::Variant(b)) => a == b,
            (Serve::Rollout(a), Serve::Rollout(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b.iter()).all(|(a, b)| {
                        a.variant == b.variant && a.weight.to_bits() == b.weight.to_bits()
                    })
            }
            (Serve::Schedule(a), Serve::Schedule(b)) => {
                a.variant == b.variant
                    && a.otherwise == b.otherwise
                    && a.steps.len() == b.steps.len()
                    && a.steps.iter().zip(&b.steps).all(|(a, b)| {
                        a.at == b.at && a.percentage.to_bits() == b.percentage.to_bits()
                    })
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::Snapshot;
    use crate::snapshot::{checksum, checksum_of, parse_json};

    const FIXTURES: [&str; 10] = [
        include_str!("../../tests/conformance/basics.json"),
        include_str!("../../tests/conformance/errors.json"),
        include_str!("../../tests/conformance/layers.json"),
        include_str!("../../tests/conformance/operators.json"),
        include_str!("../../tests/conformance/prerequisites.json"),
        include_str!("../../tests/conformance/rollouts.json"),
        include_str!("../../tests/conformance/schedules.json"),
        include_str!("../../tests/conformance/segments.json"),
        include_str!("../../tests/conformance/semver-time.json"),
        include_str!("../../tests/conformance/types.json"),
    ];

    /// Every field of the model set, strings with escapes and without.
    fn full() -> Value {
        json!({
            "schemaVersion": 1, "environment": "pro\"d", "version": 3,
            "generatedAt": "2026-11-25T00:00:00Z", "checksum": "sha256:00",
            "flags": [{
                "key": "a\\u00e9", "type": "object",
                "variants": {"z": {"b": 1, "a": [1.5, "x\n"]}, "\u{e9}": {}},
                "enabled": false, "offVariant": "z", "salt": "s", "bucketBy": "user.id",
                "clientSide": true, "layer": {"key": "l", "start": 0.5, "end": 10},
                "rules": [{"id": "r", "description": "d\t", "condition": "x == \"\\\"\"",
                           "serve": {"schedule": {"variant": "z", "otherwise": "z",
                              "steps": [{"at": "2026-01-01T00:00:00Z", "percentage": 12.5}]}}}],
                "fallthrough": {"rollout": [{"variant": "z", "weight": 100}]},
                "prerequisites": [{"flag": "b", "variant": "on"}],
                "metadata": {"description": "m", "owner": "o", "tags": ["t", "u\""]}
            }, {
                "key": "b", "type": "boolean", "variants": {"on": true},
                "offVariant": "on", "fallthrough": {"variant": "on"}, "metadata": {"owner": "o2"}
            }, {
                "key": "c", "type": "number", "variants": {"n": 1e300, "m": -0.0, "k": 12},
                "offVariant": "n", "fallthrough": {"variant": "k"}, "metadata": {"tags": ["t"]},
                "rules": [{"description": "only", "condition": "a < 1.5e-7", "serve": {"variant": "m"}}]
            }],
            "segments": [{"key": "s", "included": ["a", "b\""], "excluded": ["c"],
                          "condition": "true", "description": "d"}],
            "layers": [{"key": "l", "salt": "x", "bucketBy": "k"}]
        })
    }

    /// Lists of zero to four items (inline and spilled), a variant name
    /// written twice, numbers of every form, escapes repeated across flags.
    const EDGES: &str = r#"{"schemaVersion": 1, "environment": "e", "version": 1,
        "generatedAt": "2026-11-25T00:00:00Z", "flags": [
        {"key": "a", "type": "string", "variants": {"y": "1", "x": "\"q\"", "y": "2", "w": "w"},
         "offVariant": "x", "rules": [
           {"id": "r", "condition": "s == \"a\"", "serve": {"rollout": [
             {"variant": "x", "weight": 25}, {"variant": "y", "weight": 25.5},
             {"variant": "w", "weight": 0.001}, {"variant": "x", "weight": 49.499}]}},
           {"condition": "s == \"a\"", "serve": {"rollout": [
             {"variant": "x", "weight": 100.0}, {"variant": "y", "weight": 0}, {"variant": "w", "weight": -0.0}]}}],
         "fallthrough": {"rollout": [{"variant": "x", "weight": 1e2}]},
         "layer": {"key": "l", "start": 0, "end": 1e-3},
         "metadata": {"tags": ["a", "b", "c"]}},
        {"key": "b", "type": "number", "variants": {"n": -0.0, "m": 1e300, "k": 123456789012, "j": -7},
         "offVariant": "n", "fallthrough": {"rollout": []}, "metadata": {"tags": ["a", "b", "c", "d"]}},
        {"key": "c", "type": "number", "variants": {}, "offVariant": "n",
         "fallthrough": {"rollout": [{"variant": "n", "weight": 999999999.0}, {"variant": "n", "weight": 1e9}]},
         "metadata": {"tags": []}}
      ], "layers": [{"key": "l"}]}"#;

    fn documents() -> Vec<String> {
        let mut docs: Vec<String> = FIXTURES
            .iter()
            .map(|f| {
                let fixture: Value = serde_json::from_str(f).unwrap();
                fixture["snapshot"].to_string()
            })
            .collect();
        docs.push(full().to_string());
        docs.push(serde_json::to_string_pretty(&full()).unwrap());
        docs.push(EDGES.to_string());
        docs
    }

    #[test]
    fn the_borrowed_form_hashes_as_the_model() {
        for doc in documents() {
            let owned = parse_json(&doc).unwrap();
            let borrowed = Snapshot::parse(&doc).unwrap();
            assert_eq!(checksum_of(&borrowed), checksum(&owned), "{doc}");
            assert_eq!(checksum_of(&Snapshot::of(&owned)), checksum(&owned));
        }
    }

    /// Floats the canonical form writes itself are written as serde_json
    /// writes them.
    #[test]
    fn floats_are_written_as_serde_json_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            1.0,
            -1.0,
            12.5,
            100.0,
            49.499,
            0.001,
            1e-7,
            1e8,
            999_999_999.0,
            1e9,
            -1e9,
            1e15,
            1e16,
            1e300,
            2f64.powi(53),
            -123_456_789.0,
        ];
        values.extend((0..=2000).map(|i| f64::from(i) / 20.0));
        for x in values {
            let mut sink = super::Sink::new();
            super::Canonical::new(&mut sink).float(x);
            assert_eq!(
                std::str::from_utf8(&sink.buf).unwrap(),
                serde_json::to_string(&x).unwrap(),
                "{x:?}"
            );
        }
    }

    /// A name written twice keeps its last value, sorted among the others,
    /// as the model's map does.
    #[test]
    fn variants_are_the_models() {
        let owned = parse_json(EDGES).unwrap();
        let borrowed = Snapshot::parse(EDGES).unwrap();
        for (o, b) in owned.flags.iter().zip(&borrowed.flags) {
            let model: Vec<_> = o.variants.iter().map(|(k, v)| (k.as_str(), v)).collect();
            assert_eq!(b.variants.iter().collect::<Vec<_>>(), model);
            for name in ["w", "x", "y", "z", "n", ""] {
                assert_eq!(b.variants.contains_key(name), o.variants.contains_key(name));
            }
        }
    }

    /// Flags written partly alike, in runs and alternating: parts reused
    /// from the flag before (variants, rules, fallthrough) and variants
    /// shared while parsing hash and serve as the flags' own.
    #[test]
    fn flags_written_alike_hash_and_serve_as_their_own() {
        let variants = [
            json!({"a": "x", "b": "y"}),
            json!({"a": "x", "b": "y\""}),
            json!({"a": 1, "b": 2}),
            json!({"a": 1.0, "b": 2}),
            json!({"a": -0.0, "b": 2}),
            json!({"a": 0.0, "b": 2}),
            json!({"a": [1], "b": {"c": 2}}),
            json!({"a": true, "b": null}),
        ];
        let serves = [
            json!({"variant": "a"}),
            json!({"variant": "b"}),
            json!({"rollout": [{"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}),
            json!({"rollout": [{"variant": "a", "weight": 50.5}, {"variant": "b", "weight": 49.5}]}),
            json!({"schedule": {"variant": "a", "otherwise": "b",
                "steps": [{"at": "2026-01-01T00:00:00Z", "percentage": 10}]}}),
        ];
        let conditions = ["x == \"1\"", "x == \"2\"", "true"];
        // A small generator, so runs of alike flags and changes mix.
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        // Each flag is the one before with one thing changed.
        let rule = |c: usize, serve: usize, id: Option<usize>| {
            let mut rule = json!({"condition": conditions[c], "serve": serves[serve]});
            if let Some(id) = id {
                rule["id"] = json!(format!("r{id}"));
            }
            rule
        };
        let mut flag = json!({"key": "f0", "type": "string", "variants": variants[0],
            "enabled": true, "offVariant": "a", "rules": [rule(0, 0, None), rule(1, 2, Some(1))],
            "fallthrough": serves[0]});
        let mut flags = Vec::new();
        for i in 0..300 {
            flag["key"] = json!(format!("f{i}"));
            let rules = flag["rules"].as_array_mut().unwrap();
            let j = next(rules.len() + 1);
            match next(9) {
                0 => {
                    let v = &variants[next(variants.len())];
                    flag["type"] = json!(match v["b"] {
                        Value::String(_) => "string",
                        Value::Number(_) => "number",
                        _ => "object",
                    });
                    flag["variants"] = v.clone();
                }
                1 => flag["enabled"] = json!(next(2) == 0),
                2 => flag["offVariant"] = json!(["a", "b"][next(2)]),
                3 => flag["fallthrough"] = serves[next(serves.len())].clone(),
                4 if j < rules.len() => rules[j]["condition"] = json!(conditions[next(3)]),
                5 if j < rules.len() => rules[j]["serve"] = serves[next(serves.len())].clone(),
                6 if j < rules.len() => rules[j]["id"] = json!(format!("r{}", next(3))),
                7 if rules.len() > 1 => {
                    rules.remove(j.min(rules.len() - 1));
                }
                _ if rules.len() < 10 => rules.insert(j, rule(next(3), next(5), None)),
                _ => {}
            }
            flags.push(flag.clone());
        }
        let doc = json!({"schemaVersion": 1, "environment": "e", "version": 1,
            "generatedAt": "2026-11-25T00:00:00Z", "flags": flags})
        .to_string();
        let owned = parse_json(&doc).unwrap();
        let borrowed = Snapshot::parse(&doc).unwrap();
        assert!(
            borrowed
                .flags
                .iter()
                .any(|f| matches!(f.variants, super::Variants::Shared(_)))
        );
        assert_eq!(checksum_of(&borrowed), checksum(&owned));
        for (o, b) in owned.flags.iter().zip(&borrowed.flags) {
            let model: Vec<_> = o.variants.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let parsed: Vec<_> = b.variants.iter().collect();
            assert_eq!(
                serde_json::to_string(&parsed).unwrap(),
                serde_json::to_string(&model).unwrap()
            );
        }
        let (from_json, problems) = crate::Engine::from_json_lenient(&doc).unwrap();
        let (from_model, model_problems) = crate::Engine::from_snapshot_lenient(&owned);
        assert_eq!(problems, model_problems);
        for i in 0..300 {
            let key = format!("f{i}");
            for x in ["1", "2"] {
                let context = json!({"targetingKey": "u", "x": x});
                let (a, b) = (
                    from_json.evaluate(&key, &context, 1_800_000_000_000),
                    from_model.evaluate(&key, &context, 1_800_000_000_000),
                );
                assert_eq!(
                    serde_json::to_string(&a).unwrap(),
                    serde_json::to_string(&b).unwrap()
                );
            }
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let doc = full().to_string();
        let s = Snapshot::parse(&doc).unwrap();
        assert!(matches!(s.flags[1].key.0, std::borrow::Cow::Borrowed(_)));
        assert!(matches!(
            s.segments[0].included[0].0,
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            s.segments[0].included[1].0,
            std::borrow::Cow::Owned(_)
        ));
        assert_eq!(&*s.segments[0].included[1], "b\"");
    }

    /// Malformed documents fail with the model's message, word for word.
    #[test]
    fn errors_are_the_models() {
        let mut bad = vec![
            "{".to_string(),
            "[]".to_string(),
            r#"{"schemaVersion": 1, "flags": [}"#.to_string(),
            r#"{"schemaVersion": "1"}"#.to_string(),
        ];
        let f = full();
        let edits: [(&str, Value); 18] = [
            ("/environment", json!(1)),
            ("/flags/0/key", json!(null)),
            ("/flags/0/type", json!("text")),
            ("/flags/0/variants", json!([])),
            ("/flags/0/enabled", json!("yes")),
            (
                "/flags/0/fallthrough",
                json!({"variant": "a", "rollout": []}),
            ),
            ("/flags/0/fallthrough", json!({"other": 1})),
            ("/flags/0/rules/0/condition", json!(["x"])),
            ("/flags/0/metadata/tags/0", json!(3)),
            ("/flags/0/layer/start", json!("0")),
            ("/flags/0/prerequisites/0", json!({"flag": "b"})),
            ("/segments/0/included/1", json!(false)),
            ("/flags/0/metadata/tags", json!("t")),
            ("/flags/0/metadata/tags", json!({})),
            ("/flags/0/fallthrough/rollout", json!({"variant": "z"})),
            ("/flags/0/fallthrough/rollout/0", json!([1])),
            ("/layers/0/salt", json!(7)),
            ("/checksum", json!({})),
        ];
        for (pointer, value) in edits {
            let mut d = f.clone();
            *d.pointer_mut(pointer).unwrap() = value;
            bad.push(d.to_string());
        }
        let mut d = f.clone();
        d["flags"][0]["surprise"] = json!(1);
        bad.push(d.to_string());
        d = f.clone();
        d.as_object_mut().unwrap().remove("version");
        bad.push(serde_json::to_string_pretty(&d).unwrap());
        for doc in bad {
            let model = parse_json(&doc).unwrap_err().to_string();
            let borrowed = crate::snapshot::syntax_error(Snapshot::parse(&doc).unwrap_err());
            assert_eq!(borrowed.to_string(), model, "{doc}");
        }
    }

    /// Both load paths report the same problems and serve the same.
    #[test]
    fn problems_are_the_models() {
        for doc in documents() {
            let (_, from_json) = crate::Engine::from_json_lenient(&doc).unwrap();
            let (_, from_model) = crate::Engine::from_snapshot_lenient(&parse_json(&doc).unwrap());
            assert_eq!(from_json, from_model, "{doc}");
        }
    }
}
