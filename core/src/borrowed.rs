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

/// A flag's variants: read from a document (names borrowed where they can
/// be), or the model's own map when an owned snapshot is viewed, so that
/// viewing copies no map. Either way iterated sorted by name.
#[derive(Debug)]
pub(crate) enum Variants<'a> {
    /// From a document.
    Parsed(BTreeMap<Str<'a>, Value>),
    /// From an owned [`model::Flag`].
    Model(&'a BTreeMap<String, Value>),
}

impl Variants<'_> {
    /// `(name, value)` pairs sorted by name.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let (parsed, model) = match self {
            Variants::Parsed(m) => (Some(m.iter().map(|(k, v)| (&**k, v))), None),
            Variants::Model(m) => (None, Some(m.iter().map(|(k, v)| (k.as_str(), v)))),
        };
        parsed
            .into_iter()
            .flatten()
            .chain(model.into_iter().flatten())
    }

    /// Whether there is a variant `name`.
    pub(crate) fn contains_key(&self, name: &str) -> bool {
        match self {
            Variants::Parsed(m) => m.contains_key(name),
            Variants::Model(m) => m.contains_key(name),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Variants<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Variants<'a>, D::Error> {
        // The model's `BTreeMap<String, Value>`: the same messages.
        BTreeMap::<Str<'a>, Value>::deserialize(d).map(Variants::Parsed)
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
    #[serde(default, borrow)]
    pub flags: Vec<Flag<'a>>,
    #[serde(default, borrow)]
    pub segments: Vec<Segment<'a>>,
    #[serde(default, borrow)]
    pub layers: Vec<Layer<'a>>,
    #[serde(default, borrow)]
    pub checksum: Option<Str<'a>>,
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
    pub rules: Vec<Rule<'a>>,
    #[serde(borrow)]
    pub fallthrough: Serve<'a>,
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
    pub tags: Vec<Str<'a>>,
}

impl FlagMetadata<'_> {
    /// The owned metadata.
    pub(crate) fn to_model(&self) -> model::FlagMetadata {
        model::FlagMetadata {
            description: self.description.as_deref().map(str::to_string),
            owner: self.owner.as_deref().map(str::to_string),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// [`model::Rule`], borrowed.
#[derive(Debug, Deserialize)]
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
}

/// [`model::Serve`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) enum Serve<'a> {
    Variant(#[serde(borrow)] Str<'a>),
    Rollout(#[serde(borrow)] Vec<WeightedVariant<'a>>),
    Schedule(#[serde(borrow)] Schedule<'a>),
}

/// [`model::WeightedVariant`], borrowed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct WeightedVariant<'a> {
    #[serde(borrow)]
    pub variant: Str<'a>,
    pub weight: f64,
}

/// [`model::Schedule`], borrowed.
#[derive(Debug, Deserialize)]
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
#[derive(Debug, Deserialize)]
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
        serde_json::from_str(json)
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
            rules: f.rules.iter().map(Rule::of).collect(),
            fallthrough: Serve::of(&f.fallthrough),
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
                tags: Str::of_all(&f.metadata.tags),
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
        }
    }
}

impl<'a> Serve<'a> {
    fn of(s: &'a model::Serve) -> Serve<'a> {
        match s {
            model::Serve::Variant(v) => Serve::Variant(Str::of(v)),
            model::Serve::Rollout(arms) => Serve::Rollout(
                arms.iter()
                    .map(|a| WeightedVariant {
                        variant: Str::of(&a.variant),
                        weight: a.weight,
                    })
                    .collect(),
            ),
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
/// escape, nearly all of them, are copied as they are; the others, values
/// and numbers go through `serde_json`.
struct Canonical<'o> {
    out: &'o mut Vec<u8>,
}

impl Canonical<'_> {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn str(&mut self, s: &str) {
        // No early exit, so the scan vectorizes: one pass over short strings.
        let escape = s.bytes().fold(false, |acc, b| {
            acc | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if escape {
            serde_json::to_writer(&mut *self.out, s).expect("writing to a Vec cannot fail");
        } else {
            self.out.reserve(s.len() + 2);
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            self.out.push(b'"');
        }
    }

    fn json<T: serde::Serialize + ?Sized>(&mut self, v: &T) {
        serde_json::to_writer(&mut *self.out, v).expect("writing to a Vec cannot fail");
    }

    fn num(&mut self, n: u64) {
        use std::io::Write;
        write!(self.out, "{n}").expect("writing to a Vec cannot fail");
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    /// `"name":` after a `{` (first) or a `,`.
    fn field(&mut self, first: bool, name: &str) {
        if !first {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.raw(name);
        self.raw("\":");
    }

    fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        self.out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            each(self, item);
        }
        self.out.push(b']');
    }

    fn strs(&mut self, items: &[Str<'_>]) {
        self.list(items, |w, s| w.str(s));
    }

    fn snapshot(&mut self, s: &Snapshot<'_>) {
        self.raw("{\"schemaVersion\":");
        self.num(u64::from(s.schema_version));
        self.field(false, "environment");
        self.str(&s.environment);
        self.field(false, "version");
        self.num(s.version);
        self.field(false, "generatedAt");
        self.str(&s.generated_at);
        self.field(false, "flags");
        self.list(&s.flags, Self::flag);
        // The checksum's own serializer writes these two even when empty.
        self.field(false, "segments");
        self.list(&s.segments, Self::segment);
        self.field(false, "layers");
        self.list(&s.layers, Self::layer);
        self.out.push(b'}');
    }

    fn flag(&mut self, f: &Flag<'_>) {
        self.raw("{\"key\":");
        self.str(&f.key);
        self.field(false, "type");
        self.str(f.flag_type.as_str());
        self.field(false, "variants");
        self.out.push(b'{');
        for (i, (name, value)) in f.variants.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.str(name);
            self.out.push(b':');
            self.json(value);
        }
        self.out.push(b'}');
        self.field(false, "enabled");
        self.bool(f.enabled);
        self.field(false, "offVariant");
        self.str(&f.off_variant);
        if !f.rules.is_empty() {
            self.field(false, "rules");
            self.list(&f.rules, Self::rule);
        }
        self.field(false, "fallthrough");
        self.serve(&f.fallthrough);
        if !f.prerequisites.is_empty() {
            self.field(false, "prerequisites");
            self.list(&f.prerequisites, |w, p| {
                w.raw("{\"flag\":");
                w.str(&p.flag);
                w.field(false, "variant");
                w.str(&p.variant);
                w.out.push(b'}');
            });
        }
        if let Some(salt) = &f.salt {
            self.field(false, "salt");
            self.str(salt);
        }
        if let Some(by) = &f.bucket_by {
            self.field(false, "bucketBy");
            self.str(by);
        }
        if let Some(slot) = &f.layer {
            self.field(false, "layer");
            self.raw("{\"key\":");
            self.str(&slot.key);
            self.field(false, "start");
            self.json(&slot.start);
            self.field(false, "end");
            self.json(&slot.end);
            self.out.push(b'}');
        }
        if f.client_side {
            self.field(false, "clientSide");
            self.bool(true);
        }
        self.field(false, "metadata");
        let m = &f.metadata;
        self.out.push(b'{');
        let mut first = true;
        if let Some(d) = &m.description {
            self.field(first, "description");
            self.str(d);
            first = false;
        }
        if let Some(o) = &m.owner {
            self.field(first, "owner");
            self.str(o);
            first = false;
        }
        if !m.tags.is_empty() {
            self.field(first, "tags");
            self.strs(&m.tags);
        }
        self.raw("}}");
    }

    fn rule(&mut self, r: &Rule<'_>) {
        self.out.push(b'{');
        let mut first = true;
        if let Some(id) = &r.id {
            self.field(first, "id");
            self.str(id);
            first = false;
        }
        if let Some(d) = &r.description {
            self.field(first, "description");
            self.str(d);
            first = false;
        }
        self.field(first, "condition");
        self.str(&r.condition);
        self.field(false, "serve");
        self.serve(&r.serve);
        self.out.push(b'}');
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
                    w.field(false, "weight");
                    w.json(&a.weight);
                    w.out.push(b'}');
                });
            }
            Serve::Schedule(s) => {
                self.raw("{\"schedule\":{\"variant\":");
                self.str(&s.variant);
                self.field(false, "otherwise");
                self.str(&s.otherwise);
                self.field(false, "steps");
                self.list(&s.steps, |w, st| {
                    w.raw("{\"at\":");
                    w.str(&st.at);
                    w.field(false, "percentage");
                    w.json(&st.percentage);
                    w.out.push(b'}');
                });
                self.out.push(b'}');
            }
        }
        self.out.push(b'}');
    }

    fn segment(&mut self, s: &Segment<'_>) {
        self.raw("{\"key\":");
        self.str(&s.key);
        if !s.included.is_empty() {
            self.field(false, "included");
            self.strs(&s.included);
        }
        if !s.excluded.is_empty() {
            self.field(false, "excluded");
            self.strs(&s.excluded);
        }
        if let Some(c) = &s.condition {
            self.field(false, "condition");
            self.str(c);
        }
        if let Some(d) = &s.description {
            self.field(false, "description");
            self.str(d);
        }
        self.out.push(b'}');
    }

    fn layer(&mut self, l: &Layer<'_>) {
        self.raw("{\"key\":");
        self.str(&l.key);
        if let Some(salt) = &l.salt {
            self.field(false, "salt");
            self.str(salt);
        }
        if let Some(by) = &l.bucket_by {
            self.field(false, "bucketBy");
            self.str(by);
        }
        self.out.push(b'}');
    }
}

impl Snapshot<'_> {
    /// Appends the canonical JSON of the snapshot without its checksum
    /// (see [`crate::snapshot::checksum`]) to `out`.
    pub(crate) fn canonical(&self, out: &mut Vec<u8>) {
        Canonical { out }.snapshot(self);
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
        docs
    }

    #[test]
    fn the_borrowed_form_hashes_as_the_model() {
        for doc in documents() {
            let owned = parse_json(&doc).unwrap();
            let borrowed = Snapshot::parse(&doc).unwrap();
            assert_eq!(checksum_of(&borrowed, doc.len()), checksum(&owned), "{doc}");
            assert_eq!(checksum_of(&Snapshot::of(&owned), 0), checksum(&owned));
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
        let edits: [(&str, Value); 14] = [
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
